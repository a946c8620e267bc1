"""The length limits of an event's fields: the one place they are declared.

The API's validation (:mod:`db.event`), the columns of ``events`` and of the
aggregates (:mod:`db.models`), the stats endpoints' parameter checks and the
OpenAPI document all derive from these (a test checks the document).
"""

from __future__ import annotations

SITE_ID_MAX = 255
EVENT_TYPE_MAX = 255
PATH_MAX = 500
USER_ID_MAX = 255
EVENT_ID_MAX = 64
