"""The HTTP edge over the real ASGI app (bridge + Flask) with real Redis and a real database.

Every validation rule of POST /event and GET /stats is its own case with the exact
``{"error": ...}`` body; a 202 leaves exactly the normalized event in the queue and
a rejection leaves nothing there.

Cases that never reach the database run on SQLite only (the parametrization over
MariaDB would only repeat them); the ones that read stats run on both.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from db.settings import Settings

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
MAX_BODY = 64 * 1024
TOO_LARGE = {"error": f"body too large (at most {MAX_BODY} bytes)"}


async def queued(redis: Redis, settings: Settings) -> list[dict[str, Any]]:
    """The queue's contents, oldest first, decoded, without the visit the enqueue script
    appends (tests/webapp/test_visits_edge.py checks those)."""
    raw = await redis.lrange(settings.queue_name, 0, -1)
    items = [orjson.loads(item) for item in reversed(raw)]
    for item in items:
        assert isinstance(item.pop("visit"), dict)
    return items


def assert_json_error(response: httpx.Response, status: int, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert list(body) == ["error"]
    assert isinstance(body["error"], str)
    assert body["error"]
    if message is not None:
        assert body == {"error": message}


def event(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"site_id": "site-a", "event_type": "pageview"}
    data.update(fields)
    return data


# ---------------------------------------------------------------- 202 and the queue


async def test_accepted_event_is_queued_normalized(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    response = await client.post(
        "/event",
        json=event(path="/home", user_id="u1", timestamp="2024-01-15T12:30:00+02:00"),
    )
    assert response.status_code == 202
    assert response.json() == {"status": "accepted"}
    assert response.headers["content-type"] == "application/json"
    assert await queued(redis_client, schema) == [
        {
            "site_id": "site-a",
            "event_type": "pageview",
            "path": "/home",
            "user_id": "u1",
            "timestamp": "2024-01-15T10:30:00.000000Z",
        }
    ]


@SQLITE_ONLY
async def test_minimal_event_gets_the_receive_time(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    before = datetime.now(timezone.utc)
    response = await client.post("/event", json={"site_id": "s", "event_type": "click"})
    after = datetime.now(timezone.utc)
    assert response.status_code == 202
    [item] = await queued(redis_client, schema)
    stamp = datetime.strptime(item.pop("timestamp"), "%Y-%m-%dT%H:%M:%S.%fZ")
    assert before <= stamp.replace(tzinfo=timezone.utc) <= after
    assert item == {"site_id": "s", "event_type": "click", "path": None, "user_id": None}


@SQLITE_ONLY
async def test_naive_timestamp_is_utc_and_unknown_fields_dropped(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    body = event(timestamp="2024-01-15T10:30:00", referrer="x", nested={"a": [1]})
    assert (await client.post("/event", json=body)).status_code == 202
    [item] = await queued(redis_client, schema)
    assert item["timestamp"] == "2024-01-15T10:30:00.000000Z"
    assert set(item) == {"site_id", "event_type", "path", "user_id", "timestamp"}


@SQLITE_ONLY
async def test_event_id_resent_is_queued_once(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    body = event(event_id="5f0c-retry", timestamp="2024-01-15T10:30:00Z")
    for _ in range(3):
        response = await client.post("/event", json=body)
        assert response.status_code == 202
        assert response.json() == {"status": "accepted"}
    assert await queued(redis_client, schema) == [
        {
            "site_id": "site-a",
            "event_type": "pageview",
            "path": None,
            "user_id": None,
            "timestamp": "2024-01-15T10:30:00.000000Z",
            "event_id": "5f0c-retry",
        }
    ]
    # Same event_id on another site is another event.
    assert (await client.post("/event", json={**body, "site_id": "b"})).status_code == 202
    assert len(await queued(redis_client, schema)) == 2


@SQLITE_ONLY
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "text/plain;charset=UTF-8",  # what navigator.sendBeacon sends for a string
        "application/vnd.api+json",
        None,
    ],
)
async def test_json_accepted_with_content_type(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = orjson.dumps(event(path="/beacon"))
    response = await client.post("/event", content=body, headers=headers)
    assert response.status_code == 202, response.text
    [item] = await queued(redis_client, schema)
    assert item["path"] == "/beacon"


@SQLITE_ONLY
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/html"],
)
async def test_other_content_types_are_415(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings, content_type: str
) -> None:
    response = await client.post(
        "/event", content=orjson.dumps(event()), headers={"content-type": content_type}
    )
    assert_json_error(response, 415, "Content-Type must be application/json or text/plain")
    assert await queued(redis_client, schema) == []


# ---------------------------------------------------------------- every rule of POST /event

RULES: list[tuple[str, Any, str]] = [
    # (case id, body, exact error)
    ("site_id missing", {"event_type": "pageview"}, "site_id required"),
    ("site_id null", event(site_id=None), "site_id required"),
    ("site_id empty", event(site_id=""), "site_id required"),
    ("site_id number", event(site_id=123), "site_id must be a string"),
    ("site_id array", event(site_id=["a"]), "site_id must be a string"),
    ("site_id object", event(site_id={"a": 1}), "site_id must be a string"),
    ("site_id boolean", event(site_id=True), "site_id must be a string"),
    ("site_id too long", event(site_id="s" * 256), "site_id must be at most 255 characters"),
    ("event_type missing", {"site_id": "s"}, "event_type required"),
    ("event_type null", event(event_type=None), "event_type required"),
    ("event_type empty", event(event_type=""), "event_type required"),
    ("event_type number", event(event_type=1.5), "event_type must be a string"),
    ("event_type array", event(event_type=[]), "event_type must be a string"),
    ("event_type object", event(event_type={}), "event_type must be a string"),
    ("event_type boolean", event(event_type=False), "event_type must be a string"),
    (
        "event_type too long",
        event(event_type="e" * 256),
        "event_type must be at most 255 characters",
    ),
    ("path number", event(path=7), "path must be a string"),
    ("path array", event(path=["/a"]), "path must be a string"),
    ("path object", event(path={"p": "/a"}), "path must be a string"),
    ("path boolean", event(path=True), "path must be a string"),
    ("path too long", event(path="/" * 501), "path must be at most 500 characters"),
    ("user_id number", event(user_id=42), "user_id must be a string"),
    ("user_id array", event(user_id=["u"]), "user_id must be a string"),
    ("user_id object", event(user_id={"id": "u"}), "user_id must be a string"),
    ("user_id boolean", event(user_id=False), "user_id must be a string"),
    ("user_id too long", event(user_id="u" * 256), "user_id must be at most 255 characters"),
    ("event_id number", event(event_id=1), "event_id must be a string"),
    ("event_id empty", event(event_id=""), "event_id must not be empty"),
    ("event_id too long", event(event_id="i" * 65), "event_id must be at most 64 characters"),
    ("timestamp garbage", event(timestamp="yesterday"), "timestamp must be an ISO 8601 date-time"),
    ("timestamp empty", event(timestamp=""), "timestamp must be an ISO 8601 date-time"),
    ("timestamp number", event(timestamp=1705314600), "timestamp must be an ISO 8601 date-time"),
    ("timestamp array", event(timestamp=[]), "timestamp must be an ISO 8601 date-time"),
    (
        "timestamp bad day",
        event(timestamp="2024-02-30T10:00:00Z"),
        "timestamp must be an ISO 8601 date-time",
    ),
    (
        "timestamp before 1970",
        event(timestamp="1969-12-31T23:59:59Z"),
        "timestamp must not be before 1970-01-01",
    ),
    (
        "timestamp overflow",
        event(timestamp="9999-12-31T23:59:59-01:00"),
        "timestamp is out of range",
    ),
    ("top-level array", [event()], "body must be a JSON object"),
    ("top-level string", "site_id", "body must be a JSON object"),
    ("top-level number", 1, "body must be a JSON object"),
    ("top-level null", None, "body must be a JSON object"),
]


@SQLITE_ONLY
@pytest.mark.parametrize(("body", "message"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
async def test_rule(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings, body: Any, message: str
) -> None:
    response = await client.post("/event", content=orjson.dumps(body), headers=JSON)
    assert_json_error(response, 400, message)
    assert response.headers["access-control-allow-origin"] == "*"
    assert await queued(redis_client, schema) == []


JSON = {"content-type": "application/json"}
AT_LIMIT = [
    ("site_id", 255),
    ("event_type", 255),
    ("path", 500),
    ("user_id", 255),
    ("event_id", 64),
]


@SQLITE_ONLY
@pytest.mark.parametrize(("field", "limit"), AT_LIMIT)
async def test_exactly_at_limit_is_accepted(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings, field: str, limit: int
) -> None:
    value = "é" * limit  # characters, not bytes
    response = await client.post("/event", json=event(**{field: value}))
    assert response.status_code == 202, response.text
    [item] = await queued(redis_client, schema)
    assert item[field] == value


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body must be a JSON object"),
        (b"   \n", "body must be a JSON object"),
        (b"not json", "body is not valid JSON"),
        (b'{"site_id": "s", "event_type": "p"', "body is not valid JSON"),
        (b"{'site_id': 's'}", "body is not valid JSON"),
        (b'{"site_id": "s", "event_type": "p",}', "body is not valid JSON"),
        (b'{"site_id": "\xff\xfe", "event_type": "p"}', "body is not valid JSON"),
        (b"site_id=s&event_type=p", "body is not valid JSON"),
    ],
    ids=[
        "empty",
        "blank",
        "text",
        "truncated",
        "single quotes",
        "trailing comma",
        "bad utf-8",
        "form",
    ],
)
async def test_non_json_body_is_400(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings, body: bytes, message: str
) -> None:
    response = await client.post("/event", content=body, headers=JSON)
    assert_json_error(response, 400, message)
    assert await queued(redis_client, schema) == []


@SQLITE_ONLY
async def test_text_plain_non_json_is_400(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    response = await client.post("/event", content=b"hello", headers={"content-type": "text/plain"})
    assert_json_error(response, 400, "body is not valid JSON")
    assert await queued(redis_client, schema) == []


# ---------------------------------------------------------------- body size


def padded(size: int) -> bytes:
    """A valid event body of exactly ``size`` bytes (the padding is an ignored field)."""
    head = orjson.dumps(event(pad=""))
    body = head[:-2] + b"x" * (size - len(head)) + b'"}'
    assert len(body) == size
    return body


@SQLITE_ONLY
async def test_body_of_exactly_64_kib_is_accepted(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    response = await client.post("/event", content=padded(MAX_BODY), headers=JSON)
    assert response.status_code == 202, response.text
    assert len(await queued(redis_client, schema)) == 1


@SQLITE_ONLY
async def test_body_over_64_kib_is_413(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    response = await client.post("/event", content=padded(MAX_BODY + 1), headers=JSON)
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert await queued(redis_client, schema) == []


@SQLITE_ONLY
async def test_streamed_body_over_64_kib_without_length_is_413(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        body = padded(MAX_BODY + 10)
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    response = await client.post("/event", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert await queued(redis_client, schema) == []


@SQLITE_ONLY
async def test_streamed_body_under_the_limit_is_accepted(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        body = orjson.dumps(event(path="/streamed"))
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    response = await client.post("/event", content=chunks(), headers=JSON)
    assert response.status_code == 202
    [item] = await queued(redis_client, schema)
    assert item["path"] == "/streamed"


@SQLITE_ONLY
async def test_invalid_content_length_is_400(client: httpx.AsyncClient) -> None:
    # httpx would compute the header itself; send a request whose header lies in form.
    request = client.build_request("POST", "/event", content=b"{}", headers=JSON)
    request.headers["content-length"] = "abc"
    response = await client.send(request)
    assert_json_error(response, 400, "invalid Content-Length header")


# ---------------------------------------------------------------- CORS


@SQLITE_ONLY
async def test_cors_on_accepted_event(client: httpx.AsyncClient) -> None:
    response = await client.post("/event", json=event(), headers={"origin": "https://shop.example"})
    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == "*"


@SQLITE_ONLY
async def test_cors_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/event",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert int(response.headers["access-control-max-age"]) > 0


@SQLITE_ONLY
async def test_no_cors_on_stats(client: httpx.AsyncClient) -> None:
    response = await client.get("/stats", params={"site_id": "s", "date": "2024-01-15"})
    assert "access-control-allow-origin" not in response.headers


# ---------------------------------------------------------------- GET /stats parameters


BAD_DATE = "date must be a date as YYYY-MM-DD"
BAD_LIMIT = "limit must be an integer between 1 and 100"
STATS_RULES: list[tuple[str, dict[str, str], str]] = [
    ("site_id missing", {}, "site_id required"),
    ("site_id empty", {"site_id": ""}, "site_id required"),
    ("site_id too long", {"site_id": "s" * 256}, "site_id must be at most 255 characters"),
    ("date words", {"date": "yesterday"}, BAD_DATE),
    ("date no padding", {"date": "2024-1-5"}, BAD_DATE),
    ("date compact", {"date": "20240115"}, BAD_DATE),
    ("date impossible", {"date": "2024-02-30"}, BAD_DATE),
    ("date bad month", {"date": "2024-13-01"}, BAD_DATE),
    ("date with time", {"date": "2024-01-15T00:00"}, BAD_DATE),
    ("date iso week", {"date": "2024-W03-1"}, BAD_DATE),
    ("date non-ascii digits", {"date": "\uff12\uff10\uff12\uff14-01-15"}, BAD_DATE),
    ("date before 1970", {"date": "1969-12-31"}, "date must be between 1970-01-01 and 9999-12-30"),
    ("date year 204", {"date": "0204-01-08"}, "date must be between 1970-01-01 and 9999-12-30"),
    ("date last day", {"date": "9999-12-31"}, "date must be between 1970-01-01 and 9999-12-30"),
    (
        "from before 1970",
        {"from": "1969-12-31", "to": "1970-01-01"},
        "from must be between 1970-01-01 and 9999-12-30",
    ),
    (
        "to last day",
        {"from": "9999-12-30", "to": "9999-12-31"},
        "to must be between 1970-01-01 and 9999-12-30",
    ),
    (
        "from malformed",
        {"from": "2024/01/01", "to": "2024-01-02"},
        "from must be a date as YYYY-MM-DD",
    ),
    ("to malformed", {"from": "2024-01-01", "to": "tomorrow"}, "to must be a date as YYYY-MM-DD"),
    ("from after to", {"from": "2024-01-02", "to": "2024-01-01"}, "from must not be after to"),
    (
        "range over 366 days",
        {"from": "2024-01-01", "to": "2025-01-01"},
        "a range covers at most 366 days",
    ),
    ("from without to", {"from": "2024-01-01"}, "from and to are both required for a range"),
    ("to without from", {"to": "2024-01-01"}, "from and to are both required for a range"),
    (
        "date and range",
        {"date": "2024-01-01", "from": "2024-01-01", "to": "2024-01-02"},
        "use either date or from/to, not both",
    ),
    ("limit zero", {"limit": "0"}, BAD_LIMIT),
    ("limit negative", {"limit": "-1"}, BAD_LIMIT),
    ("limit over max", {"limit": "101"}, BAD_LIMIT),
    ("limit text", {"limit": "ten"}, BAD_LIMIT),
    ("limit float", {"limit": "1.5"}, BAD_LIMIT),
    ("limit empty", {"limit": ""}, BAD_LIMIT),
    ("limit underscore", {"limit": "1_0"}, BAD_LIMIT),
    ("limit arabic digits", {"limit": "\u0661\u0660"}, BAD_LIMIT),
    ("limit huge", {"limit": "9" * 5000}, BAD_LIMIT),
    ("event_type too long", {"event_type": "e" * 256}, "event_type must be at most 255 characters"),
]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("params", "message"), [r[1:] for r in STATS_RULES], ids=[r[0] for r in STATS_RULES]
)
async def test_stats_rule(client: httpx.AsyncClient, params: dict[str, str], message: str) -> None:
    if "site_id" not in params and message != "site_id required":
        params = {"site_id": "s", **params}
    response = await client.get("/stats", params=params)
    assert_json_error(response, 400, message)


@SQLITE_ONLY
@pytest.mark.parametrize("path", ["/stats/event-types", "/stats/timeseries"])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "site_id required"),
        ({"site_id": "s", "date": "2024-1-1"}, "date must be a date as YYYY-MM-DD"),
        ({"site_id": "s", "from": "2024-01-02", "to": "2024-01-01"}, "from must not be after to"),
        ({"site_id": "s", "date": "0204-01-08"}, "date must be between 1970-01-01 and 9999-12-30"),
        ({"site_id": "s", "date": "9999-12-31"}, "date must be between 1970-01-01 and 9999-12-30"),
    ],
)
async def test_other_stats_endpoints_share_the_rules(
    client: httpx.AsyncClient, path: str, params: dict[str, str], message: str
) -> None:
    assert_json_error(await client.get(path, params=params), 400, message)


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interval": "minute"}, "interval must be hour or day"),
        ({"interval": ""}, "interval must be hour or day"),
        (
            {"interval": "hour", "from": "2024-01-01", "to": "2024-02-01"},
            "hourly series cover at most 31 days",
        ),
    ],
)
async def test_timeseries_interval_rules(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    response = await client.get("/stats/timeseries", params={"site_id": "s", **params})
    assert_json_error(response, 400, message)


async def test_stats_of_a_day_without_events(client: httpx.AsyncClient) -> None:
    response = await client.get("/stats", params={"site_id": "nobody", "date": "2024-01-15"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "site_id": "nobody",
        "date": "2024-01-15",
        "total_views": 0,
        "unique_users": 0,
        "top_paths": [],
    }


async def test_stats_of_a_range_has_the_range_fields(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/stats", params={"site_id": "nobody", "from": "2024-01-01", "to": "2024-12-31"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "site_id": "nobody",
        "from": "2024-01-01",
        "to": "2024-12-31",
        "total_views": 0,
        "unique_users": 0,
        "top_paths": [],
        "unique_users_exact": True,
    }


@SQLITE_ONLY
@pytest.mark.parametrize("params", [{}, {"date": ""}], ids=["absent", "empty"])
async def test_stats_default_date_is_today_utc(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/stats", params={"site_id": "nobody", **params})
    assert response.status_code == 200
    assert response.json()["date"] == datetime.now(timezone.utc).date().isoformat()


@SQLITE_ONLY
@pytest.mark.parametrize("limit", ["1", "100"])
async def test_stats_limit_bounds_accepted(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get("/stats", params={"site_id": "s", "limit": limit})
    assert response.status_code == 200


@SQLITE_ONLY
@pytest.mark.parametrize("path", ["/stats", "/stats/event-types", "/stats/timeseries"])
@pytest.mark.parametrize("day", ["1970-01-01", "9999-12-30"])
async def test_first_and_last_days_accepted(client: httpx.AsyncClient, path: str, day: str) -> None:
    response = await client.get(path, params={"site_id": "s", "date": day})
    assert response.status_code == 200, response.text


@SQLITE_ONLY
async def test_stats_range_of_exactly_366_days_accepted(client: httpx.AsyncClient) -> None:
    start = datetime(2024, 1, 1).date()
    end = start + timedelta(days=365)
    response = await client.get(
        "/stats", params={"site_id": "s", "from": start.isoformat(), "to": end.isoformat()}
    )
    assert response.status_code == 200, response.text


@SQLITE_ONLY
async def test_empty_event_type_means_all(client: httpx.AsyncClient) -> None:
    response = await client.get("/stats", params={"site_id": "s", "event_type": ""})
    assert response.status_code == 200


# ---------------------------------------------------------------- every error is JSON


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no-such-page", 404),
        ("GET", "/stats/nothing", 404),
        ("POST", "/eventz", 404),
        ("GET", "/events", 405),
        ("GET", "/event", 405),
        ("PUT", "/event", 405),
        ("DELETE", "/event", 405),
        ("POST", "/stats", 405),
        ("DELETE", "/stats", 405),
        ("POST", "/healthz", 405),
        ("POST", "/openapi.json", 405),
    ],
)
async def test_routing_errors_are_json(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert_json_error(response, status)
    if status == 405:
        # RFC 9110: a 405 says which methods the resource supports.
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed & {"GET", "POST"}
        assert method not in allowed


# ---------------------------------------------------------------- health and the document


@SQLITE_ONLY
async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_with_services_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "redis": True,
        "database": True,
        "queue_length": 0,
        "dead_letters": 0,
        "workers": 0,
        "worker_heartbeat_age_s": None,
    }


@SQLITE_ONLY
async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    from pathlib import Path

    import webapp

    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    on_disk = (Path(webapp.__file__).parent / "openapi.json").read_bytes()
    assert response.content == on_disk
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
