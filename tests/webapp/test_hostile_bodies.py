"""Hostile request bodies: each one gets the documented 4xx JSON or is stored verbatim.

* Rejections run against the real ASGI app in process (real Redis, no worker), so
  "nothing left in the queue" is checked on the queue itself.
* The 10 MB body and the body that never arrives go over real sockets to the live
  ``analytics web`` process; SQL and HTML metacharacters travel through the live
  worker into MariaDB and are read back from the raw ``events`` table and /stats.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pymysql
import pytest
from redis.asyncio import Redis

from db.settings import Settings
from tests.conftest import MARIADB_HOST, MARIADB_PORT, LiveServer
from tests.helpers import poll

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
JSON = {"content-type": "application/json"}
LIMITS = {
    "site_id": 255,
    "event_type": 255,
    "path": 500,
    "user_id": 255,
    "event_id": 64,
    "url": 2000,
    "referrer": 2000,
}
WIDTH_INT = "screen_width must be an integer"
WIDTH_RANGE = "screen_width must be between 0 and 100000"
PROPS_VALUES = "props values must be strings, numbers or booleans"
MAX_BODY = 64 * 1024
NOT_JSON = "body is not valid JSON"
NOT_OBJECT = "body must be a JSON object"
BAD_TIME = "timestamp must be an ISO 8601 date-time"


def body(**fields: Any) -> bytes:
    data: dict[str, Any] = {"site_id": "hostile", "event_type": "pageview"}
    data.update(fields)
    return orjson.dumps(data)


def _table() -> list[tuple[str, bytes, int, str]]:
    """(case id, raw body, status, exact error message)."""
    cases: list[tuple[str, bytes, int, str]] = []
    wrong = {
        "int": 1,
        "float": -2.5,
        "zero": 0,
        "array": ["x"],
        "empty array": [],
        "object": {"x": "y"},
        "empty object": {},
        "true": True,
        "false": False,
    }
    for field in LIMITS:
        for kind, value in wrong.items():
            cases.append(
                (f"{field} {kind}", body(**{field: value}), 400, f"{field} must be a string")
            )
        over = "x" * (LIMITS[field] + 1)
        message = f"{field} must be at most {LIMITS[field]} characters"
        cases.append((f"{field} over by one", body(**{field: over}), 400, message))
    for kind, value in wrong.items():
        cases.append((f"timestamp {kind}", body(timestamp=value), 400, BAD_TIME))
    for field in ("site_id", "event_type"):
        cases.append((f"{field} null", body(**{field: None}), 400, f"{field} required"))
        cases.append((f"{field} empty", body(**{field: ""}), 400, f"{field} required"))
    cases += _tracker_cases()
    cases += [
        ("event_id empty", body(event_id=""), 400, "event_id must not be empty"),
        ("timestamp empty", body(timestamp=""), 400, BAD_TIME),
        ("timestamp blank", body(timestamp="   "), 400, BAD_TIME),
        ("timestamp sql", body(timestamp="2024-01-01'; DROP TABLE events;--"), 400, BAD_TIME),
        ("timestamp control", body(timestamp="2024-01-01T00:00:00\x00Z"), 400, BAD_TIME),
        # Control characters: raw ones are not JSON; escaped ones are data (see below).
        ("raw control char", b'{"site_id": "a\x01b", "event_type": "p"}', 400, NOT_JSON),
        ("raw newline in string", b'{"site_id": "a\nb", "event_type": "p"}', 400, NOT_JSON),
        ("raw NUL byte", b'{"site_id": "a\x00b", "event_type": "p"}', 400, NOT_JSON),
        # Invalid UTF-8.
        ("utf-8 0xff", b'{"site_id": "\xff", "event_type": "p"}', 400, NOT_JSON),
        ("utf-8 overlong", b'{"site_id": "\xc0\xaf", "event_type": "p"}', 400, NOT_JSON),
        ("utf-8 surrogate", b'{"site_id": "\xed\xa0\x80", "event_type": "p"}', 400, NOT_JSON),
        ("utf-8 truncated", b'{"site_id": "\xe2\x82", "event_type": "p"}', 400, NOT_JSON),
        (
            "utf-8 latin-1 body",
            '{"site_id": "café", "event_type": "p"}'.encode("latin-1"),
            400,
            NOT_JSON,
        ),
        ("escaped lone surrogate", b'{"site_id": "\\ud800", "event_type": "p"}', 400, NOT_JSON),
        ("utf-8 bom", b'\xef\xbb\xbf{"site_id": "s", "event_type": "p"}', 400, NOT_JSON),
        ("utf-16 body", '{"site_id": "s", "event_type": "p"}'.encode("utf-16"), 400, NOT_JSON),
        # Nesting.
        ("nested arrays 30k", b"[" * 30_000 + b"]" * 30_000, 400, NOT_JSON),
        ("nested objects 5k", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, 400, NOT_JSON),
        (
            "nested in site_id 500",
            b'{"site_id": ' + b"[" * 500 + b"]" * 500 + b', "event_type": "p"}',
            400,
            "site_id must be a string",
        ),
        (
            "nested in field 5k",
            b'{"site_id": "s", "event_type": "p", "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
            400,
            NOT_JSON,
        ),
        ("unclosed nesting", b"[" * 1000, 400, NOT_JSON),
        # Top level.
        ("top-level array", b'[{"site_id": "s", "event_type": "p"}]', 400, NOT_OBJECT),
        ("top-level empty array", b"[]", 400, NOT_OBJECT),
        ("top-level string", b'"{\\"site_id\\": \\"s\\"}"', 400, NOT_OBJECT),
        ("top-level number", b"42", 400, NOT_OBJECT),
        ("top-level true", b"true", 400, NOT_OBJECT),
        ("top-level null", b"null", 400, NOT_OBJECT),
        ("empty body", b"", 400, NOT_OBJECT),
        ("two documents", b'{"site_id": "s", "event_type": "p"}{}', 400, NOT_JSON),
        ("trailing garbage", b'{"site_id": "s", "event_type": "p"} x', 400, NOT_JSON),
        # Number edge cases.
        ("NaN", b'{"site_id": NaN, "event_type": "p"}', 400, NOT_JSON),
        ("Infinity", b'{"site_id": "s", "event_type": "p", "x": Infinity}', 400, NOT_JSON),
        ("number overflow", b'{"site_id": "s", "event_type": "p", "x": 1e400}', 400, NOT_JSON),
        ("huge integer", b'{"site_id": ' + b"9" * 5000 + b', "event_type": "p"}', 400, NOT_JSON),
        (
            "big integer",
            b'{"site_id": ' + b"9" * 30 + b', "event_type": "p"}',
            400,
            "site_id must be a string",
        ),
        (
            "duplicate key to wrong type",
            b'{"site_id": "s", "site_id": 1, "event_type": "p"}',
            400,
            "site_id must be a string",
        ),
        (
            "duplicate key to empty",
            b'{"site_id": "s", "site_id": "", "event_type": "p"}',
            400,
            "site_id required",
        ),
    ]
    return cases


def _tracker_cases() -> list[tuple[str, bytes, int, str]]:
    """screen_width and props: the tracker's fields that are not strings."""
    ten = {f"k{n}": n for n in range(10)}
    return [
        ("screen_width string", body(screen_width="390"), 400, WIDTH_INT),
        ("screen_width float", body(screen_width=390.5), 400, WIDTH_INT),
        ("screen_width true", body(screen_width=True), 400, WIDTH_INT),
        ("screen_width array", body(screen_width=[390]), 400, WIDTH_INT),
        ("screen_width negative", body(screen_width=-1), 400, WIDTH_RANGE),
        ("screen_width over by one", body(screen_width=100_001), 400, WIDTH_RANGE),
        ("props array", body(props=["a"]), 400, "props must be an object"),
        ("props string", body(props="a=b"), 400, "props must be an object"),
        (
            "props over by one",
            body(props={**ten, "k10": 1}),
            400,
            "props must have at most 10 properties",
        ),
        ("props empty key", body(props={"": "x"}), 400, "props keys must be 1 to 300 characters"),
        (
            "props key over by one",
            body(props={"k" * 301: "x"}),
            400,
            "props keys must be 1 to 300 characters",
        ),
        ("props value null", body(props={"k": None}), 400, PROPS_VALUES),
        ("props value object", body(props={"k": {"x": 1}}), 400, PROPS_VALUES),
        ("props value array", body(props={"k": [1]}), 400, PROPS_VALUES),
        (
            "props value over by one",
            body(props={"k": "v" * 2001}),
            400,
            "props values must be at most 2000 characters",
        ),
    ]


TABLE = _table()


def test_table_covers_every_kind() -> None:
    kinds = " ".join(case[0] for case in TABLE)
    for word in (
        "int",
        "array",
        "object",
        "null",
        "true",
        "empty",
        "over by one",
        "control",
        "utf-8",
        "nested",
        "top-level",
        "duplicate",
    ):
        assert word in kinds, word


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("raw", "status", "message"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE]
)
async def test_rejected(
    client: httpx.AsyncClient,
    redis_client: Redis,
    schema: Settings,
    raw: bytes,
    status: int,
    message: str,
) -> None:
    response = await client.post("/event", content=raw, headers=JSON)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": message}
    assert await redis_client.llen(schema.queue_name) == 0


@SQLITE_ONLY
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_duplicate_keys_last_one_wins(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings, content_type: str
) -> None:
    raw = b'{"site_id": "first", "event_type": "p", "site_id": "last", "path": 1, "path": "/ok"}'
    response = await client.post("/event", content=raw, headers={"content-type": content_type})
    assert response.status_code == 202
    [item] = await redis_client.lrange(schema.queue_name, 0, -1)
    queued = orjson.loads(item)
    assert (queued["site_id"], queued["path"]) == ("last", "/ok")


@SQLITE_ONLY
async def test_deep_nesting_in_an_ignored_field_is_accepted(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    raw = b'{"site_id": "s", "event_type": "p", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = await client.post("/event", content=raw, headers=JSON)
    assert response.status_code == 202
    [item] = await redis_client.lrange(schema.queue_name, 0, -1)
    assert "x" not in orjson.loads(item)


# ---------------------------------------------------------------- real sockets to the live server


def _addr(server: LiveServer) -> tuple[str, int]:
    url = urlsplit(server.base_url)
    assert url.hostname and url.port
    return url.hostname, url.port


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (status, headers, body) from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def _healthy(server: LiveServer) -> None:
    assert httpx.get(server.base_url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert server.web.popen.poll() is None


@pytest.fixture
def web_log(live_server: LiveServer) -> Iterator[None]:
    """Fails the test if the web process logged a traceback while it ran."""
    start = len(live_server.web.output())
    yield
    assert "Traceback" not in live_server.web.output()[start:]


def test_10_mb_body_refused_before_it_is_read(live_server: LiveServer, web_log: None) -> None:
    size = 10 * 1024 * 1024
    head = (
        "POST /event HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection(_addr(live_server), timeout=5) as sock:
        sock.sendall(head + b'{"site_id": "ten-mb", "event_type": "p", "pad": "' + b"x" * 4096)
        started = time.monotonic()
        # The answer comes although 10 MB minus 4 KiB are still unsent.
        status, headers, payload = _read_response(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert orjson.loads(payload) == {"error": f"body too large (at most {MAX_BODY} bytes)"}
    assert elapsed < 2
    _healthy(live_server)


def test_10_mb_chunked_body_cut_off_at_the_limit(live_server: LiveServer, web_log: None) -> None:
    head = (
        b"POST /event HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 16384
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(_addr(live_server), timeout=5) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        status = None
        deadline = time.monotonic() + 10
        # Send up to 10 MB, stopping as soon as the server answers.
        while sent < 10 * 1024 * 1024 and time.monotonic() < deadline:
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                pass
            try:
                sent += sock.send(frame)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
        sock.setblocking(True)
        status, _headers, payload = _read_response(sock, timeout=5)
    assert status == 413
    assert orjson.loads(payload) == {"error": f"body too large (at most {MAX_BODY} bytes)"}
    assert sent < 10 * 1024 * 1024
    _healthy(live_server)


def test_body_shorter_than_its_content_length_times_out_408(
    live_server: LiveServer, web_log: None
) -> None:
    partial = b'{"site_id": "never-complete", "event_type": "p"'
    head = (
        "POST /event HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(partial) + 100}\r\n\r\n"
    ).encode()
    with socket.create_connection(_addr(live_server), timeout=5) as sock:
        sock.sendall(head + partial)
        started = time.monotonic()
        # Meanwhile the server keeps serving others.
        _healthy(live_server)
        status, headers, payload = _read_response(sock, timeout=15)
        elapsed = time.monotonic() - started
    assert status == 408
    assert headers["content-type"] == "application/json"
    assert orjson.loads(payload) == {"error": "request body not received in time"}
    assert 4 <= elapsed < 12
    _healthy(live_server)


# ---------------------------------------------------------------- stored verbatim

VERBATIM = [
    "' OR '1'='1",
    "'; DROP TABLE events; --",
    '"; DELETE FROM events WHERE 1=1; --',
    "\\'; SELECT SLEEP(5); #",
    "%_\\%",
    "`id`",
    "0x41424344",
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "&amp;&lt;&#39;",
    "{{7*7}}${7*7}",
    "\x00\x01\x02\x1f\x7f",
    "tab\there\r\nnewline",
    "😀👩\u200d💻",
    "שלום עולם مرحبا",
    "\u202eevil\u202c",
    "e\u0301",
    "trailing space ",
]


def _rows(server: LiveServer, prefix: str) -> list[tuple[str, str, str | None, str | None]]:
    conn = pymysql.connect(
        host=MARIADB_HOST,
        port=MARIADB_PORT,
        user="root",
        password="",
        database=server.settings.database_url.database,
        charset="utf8mb4",
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT site_id, event_type, path, user_id FROM events WHERE site_id LIKE %s",
                (prefix + "%",),
            )
            return sorted(cur.fetchall())
    finally:
        conn.close()


def test_metacharacters_stored_verbatim(live_server: LiveServer, web_log: None) -> None:
    prefix = f"hostile-{uuid.uuid4().hex[:12]}-"
    sent = []
    with httpx.Client(base_url=live_server.base_url, timeout=5) as http:
        for i, value in enumerate(VERBATIM):
            site = f"{prefix}{i:02d}{value}"
            data = {
                "site_id": site,
                "event_type": value,
                "path": value,
                "user_id": value,
                "timestamp": "2024-03-01T12:00:00Z",
            }
            response = http.post("/event", content=orjson.dumps(data), headers=JSON)
            assert response.status_code == 202, (value, response.text)
            sent.append((site, value, value, value))
        expected = sorted(sent)
        rows = poll(lambda: _rows(live_server, prefix), expected)
        assert rows == expected
        # And read back through the API unchanged.
        for site, value, _, _ in sent:
            stats = http.get("/stats", params={"site_id": site, "date": "2024-03-01"}).json()
            assert stats["site_id"] == site
            assert stats["total_views"] == 1
            assert stats["top_paths"] == [{"path": value, "views": 1}]
    assert live_server.settings.queue_name  # the worker drained our queue, not another one


def test_rejected_bodies_never_reach_the_table(live_server: LiveServer, web_log: None) -> None:
    prefix = f"rejected-{uuid.uuid4().hex[:12]}-"
    with httpx.Client(base_url=live_server.base_url, timeout=5) as http:
        for case_id, raw, status, message in TABLE:
            marked = raw.replace(b'"hostile"', orjson.dumps(prefix + case_id))
            response = http.post("/event", content=marked, headers=JSON)
            assert response.status_code == status, (case_id, response.text)
            assert response.json() == {"error": message}
        sentinel = prefix + "sentinel"
        assert http.post("/event", json={"site_id": sentinel, "event_type": "p"}).status_code == 202
    expected = [(sentinel, "p", None, None)]
    assert poll(lambda: _rows(live_server, prefix), expected) == expected
