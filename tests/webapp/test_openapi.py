"""The OpenAPI document states the same field limits the code enforces.

The limits are declared once, in :mod:`db.limits`; the document is a static file,
so this test is what derives it: a limit changed in one place and not the other
fails here.
"""

from __future__ import annotations

from typing import Any

import orjson

from db import limits
from webapp.openapi import DOCUMENT

EVENT_FIELDS = {
    "site_id": limits.SITE_ID_MAX,
    "event_type": limits.EVENT_TYPE_MAX,
    "path": limits.PATH_MAX,
    "user_id": limits.USER_ID_MAX,
    "event_id": limits.EVENT_ID_MAX,
    "url": limits.URL_MAX,
    "referrer": limits.REFERRER_MAX,
}
QUERY_PARAMETERS = {"site_id": limits.SITE_ID_MAX, "event_type": limits.EVENT_TYPE_MAX}


def _document() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(DOCUMENT)
    return document


def test_event_body_limits_are_the_declared_ones() -> None:
    properties = _document()["components"]["schemas"]["Event"]["properties"]
    assert {name: properties[name]["maxLength"] for name in EVENT_FIELDS} == EVENT_FIELDS


def test_tracker_field_limits_are_the_declared_ones() -> None:
    properties = _document()["components"]["schemas"]["Event"]["properties"]
    assert properties["screen_width"]["maximum"] == limits.SCREEN_WIDTH_MAX
    props = properties["props"]
    assert props["maxProperties"] == limits.PROPS_MAX
    assert props["additionalProperties"]["oneOf"][0]["maxLength"] == limits.PROP_VALUE_MAX
    assert f"1 to {limits.PROP_KEY_MAX} characters" in props["description"]


def test_query_parameter_limits_are_the_declared_ones() -> None:
    parameters = _document()["components"]["parameters"]
    found = {name: parameters[name]["schema"]["maxLength"] for name in QUERY_PARAMETERS}
    assert found == QUERY_PARAMETERS
