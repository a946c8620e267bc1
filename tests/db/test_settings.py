"""Settings: the original README's names, URL mapping onto async drivers, fail-fast errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from db.engine import mysql_connect_args
from db.settings import SettingsError, load_settings


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(environ=env, dotenv_path=None)


def test_defaults() -> None:
    s = settings()
    assert (s.flask_host, s.flask_port) == ("0.0.0.0", 5000)
    # No REDIS_URL and no `analytics serve` beside: nothing to connect to, said in one line.
    assert s.redis_url == "" and not s.redis_url_configured and s.serve_beside is None
    with pytest.raises(SettingsError, match="REDIS_URL is not set and no `analytics serve`"):
        s.require_redis()
    assert not s.registered_sites_only and s.public_url is None
    assert s.queue_name == "event_queue"
    assert s.database_url.drivername == "sqlite+aiosqlite"
    assert s.database_url.database.endswith("analytics.db")
    assert (s.worker_concurrency, s.batch_size, s.flush_interval_ms) == (4, 2000, 200)
    assert s.max_queue_length == 1_000_000
    assert (s.metrics_allow_ips, s.metrics_token, s.metrics_port) == ("127.0.0.1", None, 0)
    assert s.log_format == "text"
    assert not s.use_tls


@pytest.mark.parametrize(
    "raw",
    [
        "mysql+pymysql://u:p@db:3306/analytics_db",
        "mysql://u:p@db:3306/analytics_db",
        "mariadb://u:p@db:3306/analytics_db",
        "mysql+aiomysql://u:p@db:3306/analytics_db",
    ],
)
def test_mysql_urls_are_driven_through_aiomysql(raw: str) -> None:
    url = settings(DATABASE_URL=raw).database_url
    assert url.drivername == "mysql+aiomysql"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "u",
        "p",
        "db",
        3306,
        "analytics_db",
    )
    assert url.query["charset"] == "utf8mb4"


def test_sqlite_url_uses_aiosqlite() -> None:
    assert settings(DATABASE_URL="sqlite:///x.db").database_url.drivername == "sqlite+aiosqlite"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLASK_PORT": "abc"}, "FLASK_PORT must be an integer, got 'abc'"),
        ({"FLASK_PORT": "70000"}, "FLASK_PORT must be between 1 and 65535, got 70000"),
        ({"FORCE_SSL": "maybe"}, "FORCE_SSL must be true or false, got 'maybe'"),
        ({"DATABASE_URL": "postgresql://x/y"}, "got backend 'postgresql'"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL is not a valid database URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must start with redis://"),
        ({"REDIS_QUEUE_NAME": "a{b}"}, "REDIS_QUEUE_NAME must be a non-empty name"),
        ({"BATCH_SIZE": "0"}, "BATCH_SIZE must be between 1 and 10000, got 0"),
        ({"WORKER_CONCURRENCY": "x"}, "WORKER_CONCURRENCY must be an integer"),
        ({"TIDB_CA_PATH": "/nonexistent/ca.pem"}, "TIDB_CA_PATH points to '/nonexistent/ca.pem'"),
        ({"DATABASE_URL": "mysql://root@h:abc/test"}, "DATABASE_URL is not a valid database URL"),
        ({"REDIS_URL": "redis://localhost:abc"}, "REDIS_URL is not valid"),
        ({"FORCE_SSL": "true"}, "TIDB_CA_PATH / FORCE_SSL need a MySQL/TiDB DATABASE_URL"),
        ({"REDIS_CLUSTER": "yes please"}, "REDIS_CLUSTER must be true or false"),
        ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER=true needs a redis:// or rediss://"),
        ({"QUEUE_SHARDS": "0"}, "QUEUE_SHARDS must be between 1 and 1024, got 0"),
        ({"REDIS_WAIT_REPLICAS": "-1"}, "REDIS_WAIT_REPLICAS must be between 0 and 16"),
        ({"METRICS_ALLOW_IPS": "127.0.0.1,localhost"}, "got 'localhost'"),
        ({"METRICS_ALLOW_IPS": "10.0.0.0/33"}, "METRICS_ALLOW_IPS must be comma-separated"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16 characters"),
        ({"METRICS_PORT": "65536"}, "METRICS_PORT must be between 0 and 65535"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be text or json, got 'xml'"),
    ],
)
def test_bad_settings_fail_with_one_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings(**env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("FLASK_PORT=6001\nREDIS_QUEUE_NAME=from_file\n")
    s = load_settings(environ={"FLASK_PORT": "6002"}, dotenv_path=dotenv)
    assert s.flask_port == 6002
    assert s.queue_name == "from_file"


@pytest.mark.parametrize("env", [{"FORCE_SSL": "true"}, {"TIDB_CA_PATH": "CA"}])
def test_tls_settings_give_a_verifying_context(env: dict[str, str], tmp_path: Path) -> None:
    if "TIDB_CA_PATH" in env:
        # Any PEM bundle will do to build the context: use the system's.
        ca = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
        if ca is None or not Path(ca).is_file():
            pytest.skip("no system CA bundle file to stand in for a TiDB CA")
        env = {"TIDB_CA_PATH": ca}
    s = settings(DATABASE_URL="mysql+pymysql://u@db/x", **env)
    assert s.use_tls
    context = mysql_connect_args(s)["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_no_tls_unless_asked() -> None:
    assert "ssl" not in mysql_connect_args(settings(DATABASE_URL="mysql+pymysql://u@db/x"))


def test_cluster_settings() -> None:
    plain = settings()
    assert (plain.redis_cluster, plain.queue_shards, plain.redis_wait_replicas) == (False, 1, 0)
    cluster = settings(
        REDIS_URL="rediss://node:7000/0",
        REDIS_CLUSTER="true",
        QUEUE_SHARDS="3",
        REDIS_WAIT_REPLICAS="1",
    )
    assert (cluster.redis_cluster, cluster.queue_shards, cluster.redis_wait_replicas) == (
        True,
        3,
        1,
    )


def test_access_control_defaults() -> None:
    s = settings()
    assert s.secret_key is None and s.public_stats is False
    assert s.forwarded_allow_ips == "127.0.0.1"
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        s.require_secret_key()


def test_secret_key_and_public_stats() -> None:
    s = settings(SECRET_KEY="k" * 32, PUBLIC_STATS="true", FORWARDED_ALLOW_IPS="10.0.0.0/8, ::1")
    assert s.require_secret_key() == "k" * 32 and s.public_stats
    assert s.forwarded_allow_ips == "10.0.0.0/8,::1"
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        settings(FORWARDED_ALLOW_IPS="10.0.0.1 10.0.0.2")
    with pytest.raises(SettingsError, match="at least 32"):
        settings(SECRET_KEY="short")
    with pytest.raises(SettingsError, match="PUBLIC_STATS must be true or false"):
        settings(PUBLIC_STATS="maybe")


@pytest.mark.parametrize(
    "raw", ["analytics.example", "ftp://a.example", "https://a.example/path", "https://u@a.example"]
)
def test_public_url_is_scheme_and_host_only(raw: str) -> None:
    with pytest.raises(SettingsError, match="PUBLIC_URL must be http"):
        settings(PUBLIC_URL=raw)


def test_public_url_and_registered_sites_only() -> None:
    s = settings(PUBLIC_URL="https://Analytics.example:8443/", REGISTERED_SITES_ONLY="true")
    assert s.public_url == "https://Analytics.example:8443" and s.registered_sites_only
