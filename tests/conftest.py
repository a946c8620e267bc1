"""Fixtures that run the code against real services: Redis, MariaDB, SQLite.

No mocks: Redis at 127.0.0.1:6379 and MariaDB at 127.0.0.1:3306 (root, no
password) must be up. The suite keeps its Redis keys in a database number of its own
(15; ``TEST_REDIS_URL`` overrides), never db 0, and passes that URL to every process it
starts: each test's clean-up SCANs for its queue's keys, and a SCAN walks its whole
database, so a million keys a benchmark left in db 0 would make every test pay for them.
Locally a missing service skips its tests with the reason; under CI (``CI`` or
``ANALYTICS_REQUIRE_SERVICES`` set) it fails them instead, since a skipped service test
there would hide a broken build.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import types
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import hypothesis
import pymysql
import pytest
import redis as redis_sync
import sqlalchemy
from redis.asyncio import Redis

from db.engine import create_engine
from db.schema import init_db
from db.settings import Settings, load_settings
from webapp import create_app
from webapp.asgi import make_asgi

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MARIADB_HOST = os.environ.get("TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("TEST_MARIADB_PORT", "3306"))
REQUIRE_SERVICES = bool(os.environ.get("CI") or os.environ.get("ANALYTICS_REQUIRE_SERVICES"))
# The pytest-xdist worker this process is ("gw0", "gw1"; "main" without xdist): part of every
# database and queue name a test makes, so workers never share one.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
ROOT = Path(__file__).resolve().parent.parent

# Hypothesis profiles. ``ci``, the default, runs the expensive property tests (those on
# real databases, which scale their count with ``tests.helpers.examples``) on a quarter of
# their full example count; ``thorough`` runs the full counts:
#     nox -s "tests(flask='3')" -- --hypothesis-profile=thorough
# A test with no count of its own gets Hypothesis' default of 100 under ``thorough`` and
# 25 under ``ci``. Cheap property tests state their counts and keep them in both.
hypothesis.settings.register_profile("thorough", max_examples=100)
hypothesis.settings.register_profile("ci", max_examples=25)
hypothesis.settings.load_profile("ci")  # --hypothesis-profile replaces it
# The shared fixtures keep the pre-accounts behaviour (open stats) so the existing
# tests assert what they always did; tests/webapp/auth runs with PUBLIC_STATS=false.
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef-not-for-production"
OPEN_STATS = {"SECRET_KEY": TEST_SECRET_KEY, "PUBLIC_STATS": "true"}


# The tests the Flask 2.3 session runs (``pytest -m flask``, see noxfile.py): those of the
# web layer, its CLI and the dashboard (tests/webapp, tests/browser), those whose module
# imports from ``webapp`` (the package built on Flask) and those that request the app in
# process (the ``client`` fixture). Flask 3 runs every test.
FLASK_DIRECTORIES = {"webapp", "browser"}


def _from_webapp(value: object) -> bool:
    name = (
        value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", "")
    )
    return isinstance(name, str) and (name == "webapp" or name.startswith("webapp."))


def uses_flask(item: pytest.Item) -> bool:
    """Whether ``item`` exercises Flask (see ``FLASK_DIRECTORIES``)."""
    if item.path.relative_to(ROOT / "tests").parts[0] in FLASK_DIRECTORIES:
        return True
    if "client" in getattr(item, "fixturenames", ()):
        return True
    module = getattr(item, "module", None)
    return module is not None and any(_from_webapp(value) for value in vars(module).values())


# Servers a session- or module-scoped fixture starts once and many tests share. Under
# pytest-xdist each worker would start its own; with ``--dist loadgroup`` (noxfile.py) the
# tests that share one run on the same worker, which starts it once.
# Fixture -> group (the browser tests reach ``live_server`` through ``analytics_url``).
SHARED_SERVERS = {
    "redis_cluster": "redis_cluster",
    "live_server": "live_server",
    "analytics_url": "live_server",
    "api_server": "api_server",
    "private_server": "private_server",
}


@pytest.hookimpl(tryfirst=True)  # before ``-m flask`` deselects by the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under pytest-xdist two tests with one node id would run as one (schemathesis's
    # per-operation tests share theirs under pytest 9.2, hence pyproject's pin): stop instead.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        counts = collections.Counter(item.nodeid for item in items)
        duplicates = [nodeid for nodeid, n in counts.items() if n > 1]
        if duplicates:
            raise pytest.UsageError(f"tests share a node id, xdist would run one: {duplicates}")
    for item in items:
        if uses_flask(item):
            item.add_marker(pytest.mark.flask)
        names = getattr(item, "fixturenames", ())
        group = next((SHARED_SERVERS[name] for name in SHARED_SERVERS if name in names), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def unique_name(prefix: str, length: int = 10) -> str:
    """``<prefix>_<worker>_<random hex>``: a database or queue name of one test's own."""
    return f"{prefix}_{WORKER}_{uuid.uuid4().hex[:length]}"


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc})"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; services are mandatory under CI", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_available() -> str:
    try:
        redis_sync.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _unavailable("Redis at " + REDIS_URL, exc)
    return REDIS_URL


def mariadb_admin() -> pymysql.connections.Connection:
    return pymysql.connect(
        host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="", autocommit=True
    )


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    try:
        mariadb_admin().close()
    except Exception as exc:
        _unavailable(f"MariaDB at {MARIADB_HOST}:{MARIADB_PORT}", exc)
    return f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}"


@contextlib.contextmanager
def temporary_mariadb(server_url: str, prefix: str = "analytics_t") -> Iterator[str]:
    """The URL of a new, empty utf8mb4 database on ``server_url``, dropped on exit."""
    name = unique_name(prefix, 12)
    admin = mariadb_admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"{server_url}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def mariadb_url(mariadb_server: str) -> Iterator[str]:
    """A fresh, empty MariaDB database for one test, dropped afterwards."""
    with temporary_mariadb(mariadb_server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'analytics.db'}"


@pytest.fixture(params=["mariadb", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on MariaDB and once on SQLite."""
    name = "mariadb_url" if request.param == "mariadb" else "sqlite_url"
    return str(request.getfixturevalue(name))


def delete_queue_keys(redis_url: str, name: str) -> None:
    client = redis_sync.Redis.from_url(redis_url)
    try:
        keys = [name, *client.scan_iter(match="{" + name + "}*", count=1000)]
        client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def queue_name(redis_available: str) -> Iterator[str]:
    """A queue of its own per test (its keys deleted after), so tests never meet."""
    name = unique_name("test_q")
    yield name
    delete_queue_keys(redis_available, name)


def make_settings(**env: str) -> Settings:
    return load_settings(environ={**OPEN_STATS, **env}, dotenv_path=None)


@pytest.fixture
def settings_factory(
    redis_available: str, queue_name: str, tmp_path: Path
) -> Callable[..., Settings]:
    def build(database_url: str, **env: str) -> Settings:
        base = {
            "REDIS_URL": redis_available,
            "REDIS_QUEUE_NAME": queue_name,
            "DATABASE_URL": database_url,
            "ANALYTICS_DATA_DIR": str(tmp_path / "data"),
            "FLUSH_INTERVAL_MS": "50",
            "WORKER_HEARTBEAT_TTL": "3",
        }
        base.update(env)
        return make_settings(**base)

    return build


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], database_url: str) -> Settings:
    return settings_factory(database_url)


async def migrate(settings: Settings) -> None:
    """Run the real migrations on ``settings.database_url`` (what ``analytics init-db`` does)."""
    engine = create_engine(settings)
    await init_db(engine)
    await engine.dispose()


class SchemaTemplates:
    """Databases the real migrations ran on once per session (per xdist worker), which
    :func:`schema` copies into each test's database: the SQLite file byte for byte, the
    MariaDB tables re-created from their ``SHOW CREATE TABLE`` with their rows (the
    migrations' version). A copy takes a fraction of the migrations' time, which several
    hundred tests paid each; tests/db/test_migrations.py checks a copy equals a migrated
    database."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sqlite: Path | None = None
        self.mariadb: str | None = None
        self.mariadb_tables: list[tuple[str, str, bool]] = []  # name, DDL, has rows
        self.admin: pymysql.connections.Connection | None = None

    async def copy_into(self, settings: Settings) -> None:
        url = settings.database_url
        kind = self._kind(url)
        if kind is None:  # a database these templates do not cover: migrate it
            await migrate(settings)
            return
        if kind == "sqlite" and self.sqlite is None:
            path = self.directory / "template.db"
            await migrate(make_settings(DATABASE_URL=f"sqlite:///{path}"))
            self.sqlite = self._checkpointed(path)
        if kind == "mariadb" and self.mariadb is None:
            name = unique_name("analytics_template", 12)
            self._admin_run(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            self.mariadb = name
            await migrate(make_settings(DATABASE_URL=mariadb_url_of(name)))
            self._read_mariadb_template()
        self._copy(kind, str(url.database))

    def _kind(self, url: sqlalchemy.URL) -> str | None:
        if url.get_backend_name() == "sqlite" and url.database:
            return None if Path(url.database).exists() else "sqlite"
        on_suite_server = (url.host, url.port) == (MARIADB_HOST, MARIADB_PORT)
        if url.get_backend_name() == "mysql" and on_suite_server and url.database:
            return "mariadb"
        return None

    @staticmethod
    def _checkpointed(path: Path) -> Path:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
        return path

    def _admin_run(self, sql: str) -> None:
        if self.admin is None:
            self.admin = mariadb_admin()
        with self.admin.cursor() as cur:
            cur.execute(sql)

    def _read_mariadb_template(self) -> None:
        assert self.admin is not None and self.mariadb is not None
        with self.admin.cursor() as cur:
            cur.execute(f"SHOW FULL TABLES FROM `{self.mariadb}` WHERE Table_type = 'BASE TABLE'")
            for table, _ in cur.fetchall():
                cur.execute(f"SHOW CREATE TABLE `{self.mariadb}`.`{table}`")
                ddl = cur.fetchone()[1]
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM `{self.mariadb}`.`{table}`)")
                self.mariadb_tables.append((table, ddl, bool(cur.fetchone()[0])))

    def _copy(self, kind: str, database: str) -> None:
        if kind == "sqlite":
            assert self.sqlite is not None
            shutil.copyfile(self.sqlite, database)
            return
        assert self.admin is not None
        with self.admin.cursor() as cur:
            cur.execute(f"USE `{database}`")
            cur.execute("SET SESSION foreign_key_checks = 0")  # tables in any order
            try:
                for table, ddl, has_rows in self.mariadb_tables:
                    cur.execute(ddl)
                    if has_rows:
                        cur.execute(
                            f"INSERT INTO `{table}` SELECT * FROM `{self.mariadb}`.`{table}`"
                        )
            finally:
                cur.execute("SET SESSION foreign_key_checks = 1")

    def drop(self) -> None:
        if self.admin is None:
            return
        if self.mariadb is not None:
            with self.admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.mariadb}`")
        self.admin.close()


def mariadb_url_of(name: str) -> str:
    return f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}"


@pytest.fixture(scope="session")
def schema_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaTemplates]:
    templates = SchemaTemplates(tmp_path_factory.mktemp("schema"))
    yield templates
    templates.drop()


@pytest.fixture
async def schema(settings: Settings, schema_templates: SchemaTemplates) -> Settings:
    """The tables the real migrations create (copied from a database they ran on)."""
    await schema_templates.copy_into(settings)
    return settings


@contextlib.asynccontextmanager
async def app_client(
    settings: Settings, peer: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """One process's app (bridge, lifespan resources, Flask) over an in-process httpx
    client whose requests come from ``peer``."""
    flask_app = create_app({"SETTINGS": settings, "TESTING": True})
    asgi = make_asgi(flask_app)
    await asgi.on_startup()  # type: ignore[misc]
    transport = httpx.ASGITransport(app=asgi, client=(peer, 123))  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await asgi.on_shutdown()  # type: ignore[misc]


@pytest.fixture
async def client(schema: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real ASGI app (bridge, lifespan resources, Flask) in process over httpx."""
    async with app_client(schema) as http:
        yield http


@pytest.fixture
async def redis_client(schema: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(schema.redis_url)
    yield client
    await client.aclose()


# ---------------------------------------------------------------- real processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A running ``analytics`` subprocess with its output in a log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Proc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "webapp.cli", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.args} exited early:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen in {self.args} output:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self._log.close()
        return code

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()
        self._log.close()


@dataclass
class LiveServer:
    """Real ``analytics web`` + ``analytics worker`` processes on real Redis and MariaDB."""

    base_url: str
    settings: Settings
    env: dict[str, str]
    tmp: Path
    web: Proc
    workers: list[Proc]

    def start_worker(self, **extra_env: str) -> Proc:
        env = {**self.env, **extra_env}
        proc = Proc(["worker"], env, self.tmp / f"worker-{len(self.workers)}.log").start()
        proc.wait_for_output("Worker started and connected successfully!")
        self.workers.append(proc)
        return proc


def process_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))}
    env.update(OPEN_STATS)
    env.update(settings_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer in {timeout} s")
        time.sleep(0.1)


def start_live_server(tmp: Path, database_url: str, redis_url: str, **extra: str) -> LiveServer:
    port = free_port()
    queue = unique_name("live_q")
    env_vars = {
        "REDIS_URL": redis_url,
        "REDIS_QUEUE_NAME": queue,
        "DATABASE_URL": database_url,
        "FLASK_HOST": "127.0.0.1",
        "FLASK_PORT": str(port),
        "ANALYTICS_DATA_DIR": str(tmp / "data"),
        "FLUSH_INTERVAL_MS": "50",
        "WORKER_HEARTBEAT_TTL": "3",
        **extra,
    }
    env = process_env(env_vars)
    init = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "init-db"], env=env, cwd=ROOT, capture_output=True
    )
    assert init.returncode == 0, init.stderr.decode()
    assert "Tables created!" in init.stdout.decode()
    web = Proc(["web"], env, tmp / "web.log").start()
    server = LiveServer(f"http://127.0.0.1:{port}", make_settings(**env_vars), env, tmp, web, [])
    server.start_worker()
    wait_http(server.base_url + "/healthz")
    return server


def stop_live_server(server: LiveServer) -> None:
    for worker in server.workers:
        if worker.popen.poll() is None:
            worker.stop()
    server.web.stop()
    delete_queue_keys(server.settings.redis_url, server.settings.queue_name)


@contextlib.contextmanager
def live_servers(
    tmp: Path, mariadb_server: str, redis_url: str, prefix: str
) -> Iterator[LiveServer]:
    """Real web + worker processes on a database of their own, all gone on exit."""
    with temporary_mariadb(mariadb_server, prefix) as database_url:
        server = start_live_server(tmp, database_url, redis_url)
        try:
            yield server
        finally:
            stop_live_server(server)


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, mariadb_server: str, redis_available: str
) -> Iterator[LiveServer]:
    """Shared real servers for end-to-end and browser tests (one MariaDB database)."""
    tmp = tmp_path_factory.mktemp("live")
    with live_servers(tmp, mariadb_server, redis_available, "analytics_live") as server:
        yield server
