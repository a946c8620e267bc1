"""Metrics and JSON logs of real processes: ``analytics serve --workers 2``, a worker
with ``METRICS_PORT``, ``analytics web`` with ``LOG_FORMAT=json``."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import redis as redis_sync
from prometheus_client.mmap_dict import MmapedDict

from asyncworker.keys import QueueKeys
from db.event import validate_event
from db.settings import Settings
from tests.conftest import ROOT, free_port, process_env, wait_http
from tests.helpers import poll, wait_until
from tests.webapp.test_cli import embedded_serve, run_cli
from tests.webapp.test_metrics import samples

TOKEN = "worker-metrics-token-0123"
NOW = datetime.now(timezone.utc)
ACCEPTED = "analytics_events_accepted_total"


def accepted_per_process(directory: Path) -> dict[str, float]:
    """What each web worker's counter file holds for the accepted counter, by pid."""
    found: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = path.stem.split("_", 1)[1]
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == ACCEPTED:
                found[pid] = found.get(pid, 0.0) + value
    return found


def test_serve_with_two_workers_sums_both_processes(tmp_path: Path) -> None:
    """Whichever Hypercorn worker answers the scrape, it counts both workers' events."""
    event = {"site_id": "mp-site", "event_type": "pageview"}
    with embedded_serve(tmp_path, ("--workers", "2")) as run:
        found = re.search(r"metrics are summed in (\S+)", run.log.read_text())
        assert found, run.log.read_text()
        directory = Path(found.group(1))
        sent = 0
        with ThreadPoolExecutor(16) as pool:  # new connections: both workers accept some
            while sum(1 for n in accepted_per_process(directory).values() if n > 0) < 2:
                assert sent < 4000, accepted_per_process(directory)
                codes = list(
                    pool.map(lambda _: httpx.post(run.base + "/event", json=event), range(100))
                )
                assert {r.status_code for r in codes} == {202}
                sent += 100
        for _ in range(6):  # fresh connections, so both workers answer scrapes
            scraped = samples(httpx.get(run.base + "/metrics").text)
            assert scraped[(ACCEPTED, ())] == sent
    assert run.code == 0
    assert not directory.exists()  # the private directory goes with the server


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], tmp: Path) -> Iterator[Callable[[], str]]:
    """``python -m webapp.cli args`` with stderr (the log lines) kept apart from stdout;
    yields a reader of stderr; stopped with SIGTERM after the block."""
    err = tmp / f"{args[0]}.stderr"
    with open(err, "wb") as stderr, open(tmp / f"{args[0]}.stdout", "wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webapp.cli", *args],
            env=process_env(env), cwd=ROOT, stdout=stdout, stderr=stderr,
        )  # fmt: skip
        try:
            yield lambda: err.read_text()
        finally:
            proc.terminate()
            assert proc.wait(60) == 0, err.read_text()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as one JSON object (fails on any line that is not)."""
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines and all(isinstance(line, dict) for line in lines)
    return lines


def test_worker_serves_its_metrics_and_logs_json(
    settings_factory: Callable[..., Settings], sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "REDIS_URL": (s := settings_factory(sqlite_url)).redis_url,
        "REDIS_QUEUE_NAME": s.queue_name,
        "DATABASE_URL": sqlite_url,
        **{"FLUSH_INTERVAL_MS": "50", "FLASK_HOST": "127.0.0.1", "LOG_FORMAT": "json"},
        **{"METRICS_PORT": str(port), "METRICS_ALLOW_IPS": "192.0.2.0/24"},
        "METRICS_TOKEN": TOKEN,
    }
    assert run_cli("init-db", env=env).returncode == 0
    url = f"http://127.0.0.1:{port}/metrics"
    with process(["worker"], env, tmp_path) as stderr:
        wait_until(
            lambda: "Worker started" in (tmp_path / "worker.stdout").read_text(), 60, "start"
        )
        refused = httpx.get(url)  # loopback is not in the list; no token
        assert refused.status_code == 403 and "error" in refused.json()
        with redis_sync.Redis.from_url(s.redis_url) as r:
            for n in range(5):
                wire = validate_event({"site_id": "w", "event_type": f"t{n}"}, NOW).to_wire()
                r.lpush(QueueKeys(s.queue_name).queue, wire)

        def scraped() -> dict[Any, float]:
            return samples(httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).text)

        poll(lambda: scraped()[("analytics_events_stored_total", ())], 5.0)
        figures = scraped()
        assert figures[("analytics_batch_events_sum", ())] == 5
        assert figures[("analytics_queue_length", (("shard", "0"),))] == 0
        assert figures[("analytics_redis_up", ())] == 1
    lines = json_lines(stderr())
    assert {"time", "level", "logger", "pid", "message"} <= set(lines[0])
    assert any("worker stopped: 5 events stored" in line["message"] for line in lines)


def test_web_workers_log_json(
    settings_factory: Callable[..., Settings], sqlite_url: str, tmp_path: Path
) -> None:
    """The spawned Hypercorn workers, not only the supervisor, write JSON lines."""
    s, port = settings_factory(sqlite_url), free_port()
    env = {
        **{"REDIS_URL": s.redis_url, "REDIS_QUEUE_NAME": s.queue_name, "DATABASE_URL": sqlite_url},
        **{"FLASK_HOST": "127.0.0.1", "FLASK_PORT": str(port), "LOG_FORMAT": "json"},
    }
    with process(["web", "--workers", "2"], env, tmp_path) as stderr:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_until(lambda: stderr().count("Running on") == 2, 30, "both workers' start line")
    lines = json_lines(stderr())
    running = [line for line in lines if "Running on" in line["message"]]
    assert {line["logger"] for line in running} == {"hypercorn.error"}
    assert len({line["pid"] for line in running}) == 2
