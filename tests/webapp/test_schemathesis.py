"""Generated requests from ``webapp/openapi.json`` against real processes.

Schemathesis derives valid and invalid requests for every documented operation and
sends them to a real ``analytics web`` + ``analytics worker`` pair (on real Redis and
MariaDB, a server of this module's own so the generated events stay out of other
tests' data). Every response must match the document: documented status code,
content type, headers and body schema; no 5xx except the documented 503s.

The number of generated cases is bounded (``MAX_EXAMPLES`` per operation, the same
cases on every run) so the suite stays short; ``ANALYTICS_FUZZ_EXAMPLES=500`` runs a
deeper, randomized search locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import webapp
from tests.conftest import LiveServer, live_servers

DOCUMENT = Path(webapp.__file__).parent / "openapi.json"
FUZZ = os.environ.get("ANALYTICS_FUZZ_EXAMPLES")
MAX_EXAMPLES = int(FUZZ or 30)

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            # Valid and invalid inputs alike: invalid ones must get a documented 4xx.
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            # Reproducible runs in CI, no example database written into the repo.
            "deterministic": FUZZ is None,
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # 503 is documented (Redis or database unreachable); any other 5xx is a bug.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
            # OpenAPI 3.0 cannot express the rules between query parameters (date or
            # from+to, a range of at most 366 days), so a schema-valid combination may
            # rightly be a 400; test_api.py covers those rules one by one.
            "positive_data_acceptance": {"enabled": False},
        },
        "request-timeout": 15,
    }
)

schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def api_server(
    tmp_path_factory: pytest.TempPathFactory, mariadb_server: str, redis_available: str
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    with live_servers(tmp, mariadb_server, redis_available, "analytics_st") as server:
        yield server
    assert "Traceback" not in server.web.output(), server.web.output()[-3000:]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_the_document(case: schemathesis.Case, api_server: LiveServer) -> None:
    case.call_and_validate(base_url=api_server.base_url)


def test_document_covers_every_api_route() -> None:
    """Every route of the app (but the dashboard's pages) is in the document, and back."""
    from tests.conftest import make_settings
    from webapp import create_app

    app = create_app({"SETTINGS": make_settings(), "TESTING": True})
    documented = {
        (method.upper(), path)
        for path, item in orjson.loads(DOCUMENT.read_bytes())["paths"].items()
        for method in item
    }
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ("api", "ingest", "openapi", "visitors")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS") or rule.rule in ("/event", "/events")
    }
    served -= {("HEAD", "/event"), ("HEAD", "/events")}
    assert served == documented
