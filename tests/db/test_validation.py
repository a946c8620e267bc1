"""Unit tests of the event rules in :mod:`db.event` (no services needed).

One case per rule: required fields, wrong types for each field, empty strings,
lengths at and one over each limit, timestamps (``Z``, offsets, naive) and the
queue's wire format round trip.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from db.event import (
    Event,
    InvalidEvent,
    decode_wire,
    parse_timestamp,
    validate_event,
)
from db.limits import (
    EVENT_ID_MAX,
    EVENT_TYPE_MAX,
    LABEL_MAX,
    PATH_MAX,
    SITE_ID_MAX,
    USER_ID_MAX,
)
from db.models import EVENT_COLUMNS

NOW = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
UTC = timezone.utc


def base(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"site_id": "site", "event_type": "pageview"}
    event.update(fields)
    return event


def rejected(data: object, received_at: datetime | None = NOW) -> str:
    with pytest.raises(InvalidEvent) as info:
        validate_event(data, received_at)
    return str(info.value)


# ---------------------------------------------------------------- shape


@pytest.mark.parametrize("body", [[], [base()], "text", 1, 1.5, True, None])
def test_body_must_be_an_object(body: object) -> None:
    assert rejected(body) == "body must be a JSON object"


def test_minimal_event_gets_the_receive_time() -> None:
    event = validate_event(base(), NOW)
    assert event == Event("site", "pageview", None, None, NOW, None)


def test_full_event_is_kept_as_sent() -> None:
    event = validate_event(
        base(path="/home", user_id="u1", timestamp="2024-01-15T10:30:00Z", event_id="e-1"), NOW
    )
    assert event == Event(
        "site", "pageview", "/home", "u1", datetime(2024, 1, 15, 10, 30, tzinfo=UTC), "e-1"
    )


def test_unknown_fields_are_ignored() -> None:
    assert validate_event(base(extra={"x": 1}, origin="r"), NOW) == validate_event(base(), NOW)


# ---------------------------------------------------------------- required fields


@pytest.mark.parametrize("field", ["site_id", "event_type"])
def test_required_field_missing(field: str) -> None:
    data = base()
    del data[field]
    assert rejected(data) == f"{field} required"


@pytest.mark.parametrize("field", ["site_id", "event_type"])
def test_required_field_null(field: str) -> None:
    assert rejected(base(**{field: None})) == f"{field} required"


@pytest.mark.parametrize("field", ["site_id", "event_type"])
def test_required_field_empty(field: str) -> None:
    assert rejected(base(**{field: ""})) == f"{field} required"


def test_missing_site_id_message_is_the_readmes() -> None:
    assert rejected({"event_type": "pageview"}) == "site_id required"


def test_both_missing_names_site_id_first() -> None:
    assert rejected({}) == "site_id required"


# ---------------------------------------------------------------- types

WRONG_TYPES = [0, 1, -1, 1.5, True, False, [], ["a"], {}, {"a": "b"}]
STRING_FIELDS = ["site_id", "event_type", "path", "user_id", "event_id"]


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_wrong_type(field: str, value: object) -> None:
    assert rejected(base(**{field: value})) == f"{field} must be a string"


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_timestamp_wrong_type(value: object) -> None:
    assert rejected(base(timestamp=value)) == "timestamp must be an ISO 8601 date-time"


@pytest.mark.parametrize("field", ["path", "user_id", "event_id", "timestamp"])
def test_optional_field_null_is_absent(field: str) -> None:
    assert validate_event(base(**{field: None}), NOW) == validate_event(base(), NOW)


# ---------------------------------------------------------------- empty strings


@pytest.mark.parametrize("field", ["path", "user_id"])
def test_optional_field_empty_string_is_kept(field: str) -> None:
    event = validate_event(base(**{field: ""}), NOW)
    assert getattr(event, field) == ""


def test_event_id_empty() -> None:
    assert rejected(base(event_id="")) == "event_id must not be empty"


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_timestamp_blank(value: str) -> None:
    assert rejected(base(timestamp=value)) == "timestamp must be an ISO 8601 date-time"


# ---------------------------------------------------------------- lengths

LIMITS = [
    ("site_id", SITE_ID_MAX),
    ("event_type", EVENT_TYPE_MAX),
    ("path", PATH_MAX),
    ("user_id", USER_ID_MAX),
    ("event_id", EVENT_ID_MAX),
]


def test_limits_are_the_documented_ones() -> None:
    assert dict(LIMITS) == {
        "site_id": 255,
        "event_type": 255,
        "path": 500,
        "user_id": 255,
        "event_id": 64,
    }


@pytest.mark.parametrize(("field", "limit"), LIMITS)
def test_exactly_at_limit_is_accepted(field: str, limit: int) -> None:
    event = validate_event(base(**{field: "x" * limit}), NOW)
    assert getattr(event, field) == "x" * limit


@pytest.mark.parametrize(("field", "limit"), LIMITS)
def test_one_over_limit_is_rejected(field: str, limit: int) -> None:
    assert rejected(base(**{field: "x" * (limit + 1)})) == (
        f"{field} must be at most {limit} characters"
    )


@pytest.mark.parametrize(("field", "limit"), LIMITS)
def test_limit_counts_characters_not_bytes(field: str, limit: int) -> None:
    # 4-byte UTF-8 characters: the column is VARCHAR(n) in characters (utf8mb4).
    assert getattr(validate_event(base(**{field: "😀" * limit}), NOW), field) == "😀" * limit
    assert rejected(base(**{field: "😀" * (limit + 1)})) == (
        f"{field} must be at most {limit} characters"
    )


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00+00:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00+02:00", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00-05:30", datetime(2024, 1, 15, 16, 0, tzinfo=UTC)),
        ("2024-01-15T23:30:00-01:00", datetime(2024, 1, 16, 0, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00.123456Z", datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)),
        ("2024-01-15T10:30:00.5+01:00", datetime(2024, 1, 15, 9, 30, 0, 500000, tzinfo=UTC)),
        ("2024-01-15T10:30:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),  # naive = UTC
        ("2024-01-15 10:30:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        (" 2024-01-15T10:30:00Z ", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15t10:30:00z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15", datetime(2024, 1, 15, tzinfo=UTC)),
        ("2024-01-15T10:30:00+0200", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00+02", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00-23:59", datetime(2024, 1, 16, 10, 29, tzinfo=UTC)),
        ("2024-01-15T10:30:00,25Z", datetime(2024, 1, 15, 10, 30, 0, 250000, tzinfo=UTC)),
        ("2024-01-15T10:30:00.123456789Z", datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_timestamp_normalized_to_utc(raw: str, expected: datetime) -> None:
    parsed = parse_timestamp(raw)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert validate_event(base(timestamp=raw), NOW).timestamp == expected


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "now",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-15T25:00:00Z",
        "2024-01-15T10:30:00+25:00",
        "2024-01-15T10:30:00+01:00Z",
        "15/01/2024 10:30",
        "1705314600",
        "Z",
        "2024-01-15T10:30:00ZZ",
        # Python 3.11's fromisoformat accepts these; they are not ISO 8601 timestamps.
        "2024-01-15T10:30:00\x00",
        "2024-01-15T10:30:00\x00Z",
        "2024-01-15x10:30:00",
        "2024-01-15T10:30:00 +01:00",
        "2024-W03-1",
        "2024W031T103000",
        "20240115T103000Z",
        "2024-01-15T10",
        "2024-01-15T10:30:00+01:00:30",
        "2024-01-15T10:30:00+24:00",
        "2024-01-15T10:30:00+01:60",
        "2024-01-15T24:00:00Z",
        "2024-01-15T23:59:60Z",
        "2023-02-29T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "\uff12\uff10\uff12\uff14-01-15T10:30:00Z",
        "2024-01-15T10:30:00.Z",
        "2024-01-15T10:30:00.1234567890Z",
        "2024-01-15T10:30:00 UTC",
        "-2024-01-15T10:30:00Z",
    ],
)
def test_unparsable_timestamp_is_rejected_not_replaced(raw: str) -> None:
    message = rejected(base(timestamp=raw))
    assert message == "timestamp must be an ISO 8601 date-time"
    assert "timestamp" in message


def test_timestamp_before_1970_is_rejected() -> None:
    assert rejected(base(timestamp="1969-12-31T23:59:59Z")) == (
        "timestamp must not be before 1970-01-01"
    )


def test_timestamp_offset_pushing_before_1970_is_rejected() -> None:
    assert rejected(base(timestamp="1970-01-01T00:30:00+01:00")) == (
        "timestamp must not be before 1970-01-01"
    )


def test_timestamp_overflowing_on_conversion_is_rejected() -> None:
    assert rejected(base(timestamp="9999-12-31T23:59:59-01:00")) == "timestamp is out of range"


def test_timestamp_absent_in_the_worker_is_poison() -> None:
    # The worker passes received_at=None: the web edge always queues a timestamp.
    assert rejected(base(), received_at=None) == "timestamp required"


# ---------------------------------------------------------------- wire format


def test_wire_round_trip_full() -> None:
    event = validate_event(
        base(path="/p", user_id="u", timestamp="2024-01-15T10:30:00+01:00", event_id="id"), NOW
    )
    raw = event.to_wire()
    assert orjson.loads(raw) == {
        "site_id": "site",
        "event_type": "pageview",
        "path": "/p",
        "user_id": "u",
        "timestamp": "2024-01-15T09:30:00.000000Z",
        "event_id": "id",
    }
    assert decode_wire(raw) == event


def test_wire_round_trip_minimal_keeps_microseconds() -> None:
    event = validate_event(base(), NOW)
    raw = event.to_wire()
    assert orjson.loads(raw) == {
        "site_id": "site",
        "event_type": "pageview",
        "path": None,
        "user_id": None,
        "timestamp": "2024-06-01T12:00:00.123456Z",
    }
    assert decode_wire(raw) == event


@pytest.mark.parametrize(
    "value",
    [
        "😀 emoji",
        "שלום עולם",
        "'; DROP TABLE events; --",
        "<script>alert(1)</script>",
        "a\x00b\x1f",
    ],
)
def test_wire_round_trip_is_verbatim(value: str) -> None:
    event = validate_event(base(site_id=value, path=value, user_id=value, event_type=value), NOW)
    assert decode_wire(event.to_wire()) == event


def test_row_is_naive_utc() -> None:
    event = validate_event(base(timestamp="2024-01-15T10:30:00+02:00"), NOW)
    assert event.row()["timestamp"] == datetime(2024, 1, 15, 8, 30)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'{"event_type": "x", "timestamp": "2024-01-15T10:30:00Z"}', "site_id required"),
        (b'{"site_id": "s", "event_type": "x"}', "timestamp required"),
    ],
)
def test_poison_on_the_wire(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_wire(raw)


# ---------------------------------------------------------------- tracker fields and visits


def test_props_values_become_text_and_tracker_fields_are_kept_for_the_edge() -> None:
    event = validate_event(
        base(
            url="https://a.example/x",
            referrer="https://b.example/",
            screen_width=0,
            props={"plan": "pro", "n": 3, "ratio": 0.5, "ok": True, "no": False},
        ),
        NOW,
    )
    assert event.props == {"plan": "pro", "n": "3", "ratio": "0.5", "ok": "true", "no": "false"}
    assert (event.url, event.referrer, event.screen_width) == (
        "https://a.example/x",
        "https://b.example/",
        0,
    )
    # The edge-only fields never reach the queue; props do.
    wire = orjson.loads(event.to_wire())
    assert "url" not in wire and "referrer" not in wire and "screen_width" not in wire
    assert decode_wire(event.to_wire()).props == event.props
    assert validate_event(base(props={}), NOW).props is None


def _visit_wire(**changes: Any) -> bytes:
    visit: dict[str, Any] = {
        "visitor": "0" * 32,
        "id": "42",
        "seq": 2,
        "start": 1_000_000,
        "dims": {"source": "Google", "device": "Mobile"},
        "before": [1, 1_000_000, 1_000_000, "/a", "/a"],
        "after": [2, 1_000_000, 3_000_000, "/a", "/b"],
    }
    visit.update(changes)
    return orjson.dumps({**base(timestamp="2024-01-01T00:00:00Z"), "visit": visit})


def test_a_queued_visit_decodes() -> None:
    event = decode_wire(_visit_wire())
    assert event.visit is not None
    assert (event.visit.id, event.visit.seq, event.visit.after.exit) == (42, 2, "/b")
    assert event.visit.after.duration_us == 2_000_000
    assert decode_wire(event.to_wire()) == event
    row = event.row()
    assert (row["visit_id"], row["visit_seq"], row["source"], row["country"]) == (
        42,
        2,
        "Google",
        None,
    )


def test_an_events_row_names_every_column_with_its_field() -> None:
    """Event.values (what the worker renders) fills EVENT_COLUMNS in order, field by field."""
    event = decode_wire(_visit_wire(dims={"source": "Google", "os_version": "14"}))
    event = dataclasses.replace(event, props={"plan": "pro"}, user_id="u1", path="/p")
    assert event.visit is not None
    expected = dict.fromkeys(EVENT_COLUMNS)
    expected.update(
        site_id=event.site_id,
        event_type=event.event_type,
        path="/p",
        user_id="u1",
        timestamp=datetime(2024, 1, 1),
        visitor_id=event.visit.visitor,
        visit_id=42,
        visit_seq=2,
        source="Google",
        os_version="14",
        props='{"plan":"pro"}',
    )
    assert event.row() == expected and list(event.row()) == list(EVENT_COLUMNS)
    bare = dataclasses.replace(event, visit=None, props=None)
    assert bare.row() == {**expected, **dict.fromkeys(EVENT_COLUMNS[5:])}


@pytest.mark.parametrize(
    "changes",
    [
        {"visitor": "not-hex"},
        {"id": "-1"},
        {"id": 42},
        {"seq": 1},  # a first event has no state before it
        {"before": None},
        {"after": [3, 1_000_000, 3_000_000, "/a", "/b"]},  # events disagree with seq
        {"after": [2, 3_000_000, 1_000_000, "/a", "/b"]},  # ends before it starts
        {"dims": {"ip": "1.2.3.4"}},
        {"dims": {"source": ""}},
        {"start": -1},
    ],
)
def test_a_malformed_visit_is_poison(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        decode_wire(_visit_wire(**changes))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"after": [True, 1_000_000, 3_000_000, "/a", "/b"]}, "out-of-range number"),
        ({"after": [2, 1_000_000.0, 3_000_000, "/a", "/b"]}, "out-of-range number"),
        ({"after": [2, 1_000_000, 2**53 + 1, "/a", "/b"]}, "out-of-range number"),
        ({"after": [2, -1, 3_000_000, "/a", "/b"]}, "out-of-range number"),
        ({"after": [2, 1_000_000, 3_000_000, "/a", 5]}, "malformed page"),
        ({"after": [2, 1_000_000, 3_000_000, "x" * (PATH_MAX + 1), "/b"]}, "malformed page"),
        ({"after": [2, 3_000_000, 1_000_000, "/a", 5]}, "malformed page"),
        ({"after": [2, 3_000_000, 1_000_000, "/a", "/b"]}, "ends before it starts"),
        ({"before": [1, 1_000_000, 1_000_000, "/a"]}, "list of 5"),
        ({"dims": {"source": "Google", "ip": "1.2.3.4"}}, "unknown visit dimension 'ip'"),
        ({"dims": {"source": "x" * (LABEL_MAX + 1)}}, "dimension source is malformed"),
        ({"dims": {"referrer": "x" * (PATH_MAX + 1)}}, "dimension referrer is malformed"),
        ({"dims": {"device": 1}}, "dimension device is malformed"),
    ],
)
def test_a_malformed_visit_says_why(changes: dict[str, Any], reason: str) -> None:
    """Each rule of a visit's states and dimensions, and the first broken one is named."""
    with pytest.raises(InvalidEvent, match=re.escape(reason)):
        decode_wire(_visit_wire(**changes))


def test_a_visits_referrer_may_be_as_long_as_a_page() -> None:
    event = decode_wire(_visit_wire(dims={"referrer": "x" * PATH_MAX}))
    assert event.visit is not None and len(event.visit.dims["referrer"]) == PATH_MAX


def test_a_bot_is_queued_without_visit_or_edge_fields() -> None:
    bot = orjson.loads(_visit_wire())
    bot["bot"] = True
    with pytest.raises(InvalidEvent):
        decode_wire(orjson.dumps(bot))
    del bot["visit"]
    assert decode_wire(orjson.dumps(bot)).bot
    with pytest.raises(InvalidEvent, match="never queued"):
        decode_wire(orjson.dumps({**bot, "url": "https://a.example/"}))
