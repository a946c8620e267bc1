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

# Fields the tracker sends (issue: visitors). A URL or referrer longer than browsers
# commonly send is refused rather than cut, as the other fields are.
URL_MAX = 2000
REFERRER_MAX = 2000
SCREEN_WIDTH_MAX = 100_000
PROPS_MAX = 10
PROP_KEY_MAX = 300
PROP_VALUE_MAX = 2000

# What enrichment stores per event: names of a source, browser, OS, region or city and
# the five utm_* values are cut to this (they are labels, not data); countries are ISO
# 3166-1 alpha-2 codes. A breakdown's value holds the longest of these and a props value.
LABEL_MAX = 255
COUNTRY_LEN = 2
VALUE_MAX = PROP_VALUE_MAX
# ``props:`` + a key: the longest breakdown property name.
PROPERTY_MAX = len("props:") + PROP_KEY_MAX
