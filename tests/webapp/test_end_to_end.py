"""The original README's "Complete Workflow Example" against real processes."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from tests.conftest import LiveServer
from tests.helpers import poll


def test_complete_workflow_example(live_server: LiveServer) -> None:
    site = "test-site-e2e"
    events = [
        {"site_id": site, "event_type": "pageview", "path": "/home", "user_id": "user1"},
        {"site_id": site, "event_type": "pageview", "path": "/about", "user_id": "user1"},
        {"site_id": site, "event_type": "pageview", "path": "/home", "user_id": "user2"},
    ]
    with httpx.Client(base_url=live_server.base_url, timeout=5) as http:
        for event in events:
            response = http.post("/event", json=event)
            assert response.status_code == 202
            assert response.json() == {"status": "accepted"}

        today = datetime.now(timezone.utc).date().isoformat()
        expected = {
            "site_id": site,
            "date": today,
            "total_views": 3,
            "unique_users": 2,
            "top_paths": [{"path": "/home", "views": 2}, {"path": "/about", "views": 1}],
        }
        got = poll(lambda: http.get("/stats", params={"site_id": site}).json(), expected)
        assert got == expected
        assert http.get("/").status_code == 200
