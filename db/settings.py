"""Typed settings read once from the environment and a ``.env`` file.

Modelled on Starlette's ``config.py``: every value is parsed and checked when the
settings are built, so a bad value stops the process at start with one clear line
(:class:`SettingsError`) instead of a traceback deep inside a request or a batch.
Names are the original README's (``FLASK_HOST``, ``REDIS_URL``, ``DATABASE_URL``...)
plus the worker's tuning knobs.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values
from redis.connection import parse_url as parse_redis_url
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from db.datadir import DataDirError, RunningServe, read_secret_key, running_serve

N = TypeVar("N", int, float)

# User-set rows each worker process remembers as committed (db/rollups/membership.py).
DEFAULT_ROLLUP_CACHE_SIZE = 500_000
SECRET_KEY_MIN = 32
METRICS_TOKEN_MIN = 16
LOG_FORMATS = ("text", "json")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is meant for the user, as is."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _number(
    env: Mapping[str, str], name: str, default: N, low: N, high: N, parse: Callable[[str], N]
) -> N:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        kind = "an integer" if parse is int else "a number"
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float)


def normalize_database_url(raw: str) -> URL:
    """Map the URLs users write onto the async drivers of our stack.

    The original README writes ``mysql+pymysql://``; we accept it (and plain
    ``mysql://``, ``mariadb://``) and drive it through aiomysql. ``sqlite://``
    becomes aiosqlite. Anything else is refused here rather than failing later.
    """
    try:
        url = make_url(raw)
        url.port  # noqa: B018 - parsed lazily; a bad port raises here, not at connect time
    except (ArgumentError, ValueError):
        raise SettingsError(f"DATABASE_URL is not a valid database URL: {raw!r}") from None
    backend = url.get_backend_name()
    if backend in ("mysql", "mariadb"):
        url = url.set(drivername="mysql+aiomysql")
        query = dict(url.query)
        query.setdefault("charset", "utf8mb4")
        return url.set(query=query)
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    raise SettingsError(
        f"DATABASE_URL must be a MySQL/MariaDB/TiDB or SQLite URL, got backend {backend!r}"
    )


@dataclass(frozen=True)
class Settings:
    """Everything the web app, the worker and the CLI read from the environment."""

    flask_host: str
    flask_port: int
    # REDIS_URL, or the running serve's Redis; '' when neither (see require_redis).
    redis_url: str
    redis_url_configured: bool
    queue_name: str
    database_url: URL
    database_url_configured: bool
    tidb_ca_path: Path | None
    force_ssl: bool
    data_dir: Path
    worker_concurrency: int
    batch_size: int
    flush_interval_ms: int
    max_queue_length: int
    heartbeat_ttl_s: float
    shutdown_grace_s: float
    rollup_cache_size: int = DEFAULT_ROLLUP_CACHE_SIZE
    # REDIS_URL names one node of a Redis Cluster (the client discovers the others).
    redis_cluster: bool = False
    # Queue shards (each its own hash tag, so a cluster spreads them); 1 = today's keys.
    queue_shards: int = 1
    # Replicas that must acknowledge an enqueue before the web edge answers 202.
    redis_wait_replicas: int = 0
    # The shard count before the last change (0: none): its dedupe keys are checked too.
    queue_shards_previous: int = 0
    # Signs sessions and keys the hashes of API keys, share tokens and session tokens.
    secret_key: str | None = None
    # true: every reading endpoint is open, as before accounts existed (intranet installs).
    public_stats: bool = False
    # Proxies whose X-Forwarded-* headers are believed, as written (the web parses it).
    forwarded_allow_ips: str = "127.0.0.1"
    # A MaxMind/DB-IP City database (.mmdb) for region and city; countries need none.
    geoip_db: Path | None = None
    # Clients (addresses or networks) that may read /metrics without METRICS_TOKEN.
    metrics_allow_ips: str = "127.0.0.1"
    # A Bearer token that opens /metrics from anywhere (None: only METRICS_ALLOW_IPS).
    metrics_token: str | None = None
    # The worker's own metrics port (0: none); the web edge serves /metrics on its port.
    metrics_port: int = 0
    # "text" (human lines) or "json" (one object per line, for log shippers).
    log_format: str = "text"
    # true: events of a site nobody registered are answered 202 and dropped (never queued).
    registered_sites_only: bool = False
    # The address browsers use (scheme://host[:port]); when set, it wins over the request's
    # Host and X-Forwarded-* for links, cookies and the CSRF Referer check.
    public_url: str | None = None
    # With REDIS_URL unset: the `analytics serve` running in data_dir, whose Redis we use.
    serve_beside: RunningServe | None = None

    @property
    def use_tls(self) -> bool:
        """Verified TLS to the database: asked for by a CA file or by FORCE_SSL."""
        return self.force_ssl or self.tidb_ca_path is not None

    def require_secret_key(self) -> str:
        """SECRET_KEY, for the commands that sign or hash credentials; one clear line if unset."""
        if self.secret_key is None:
            raise SettingsError(
                "SECRET_KEY is not set (at least 32 characters; e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return self.secret_key

    def require_redis(self) -> str:
        """REDIS_URL, or the Redis of the ``analytics serve`` running in the data folder;
        one clear line when there is neither (a command never starts a Redis of its own
        that no worker would read)."""
        if not (self.redis_url_configured or self.serve_beside):
            raise SettingsError(
                f"REDIS_URL is not set and no `analytics serve` is running in "
                f"{self.data_dir.resolve()}: set REDIS_URL, or run this beside `analytics serve`"
            )
        return self.redis_url

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _redis_url(env: Mapping[str, str]) -> str:
    """REDIS_URL as given ('' when unset), checked the way redis-py will parse it."""
    raw = (env.get("REDIS_URL") or "").strip()
    if raw:
        if not raw.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {raw!r}"
            )
        try:
            parse_redis_url(raw)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise SettingsError(f"REDIS_URL is not valid ({exc}): {raw!r}") from None
    return raw


def _queue_name(env: Mapping[str, str]) -> str:
    """The queue's name, which is also the hash tag of every key: no braces, no spaces."""
    name = (env.get("REDIS_QUEUE_NAME") or "event_queue").strip()
    if not name or any(c in name for c in "{} \t\r\n"):
        raise SettingsError(
            f"REDIS_QUEUE_NAME must be a non-empty name without braces or spaces, got {name!r}"
        )
    return name


def _ca_path(env: Mapping[str, str]) -> Path | None:
    raw = (env.get("TIDB_CA_PATH") or "").strip()
    path = Path(raw).expanduser() if raw else None
    if path is not None and not path.is_file():
        raise SettingsError(f"TIDB_CA_PATH points to {str(path)!r}, which is not a file")
    return path


def _secret_key(env: Mapping[str, str], data_dir: Path) -> str | None:
    """SECRET_KEY, else the key ``analytics serve`` generated into the data folder."""
    raw = (env.get("SECRET_KEY") or "").strip()
    if raw and len(raw) < SECRET_KEY_MIN:
        raise SettingsError(f"SECRET_KEY must be at least {SECRET_KEY_MIN} characters long")
    if raw:
        return raw
    try:
        return read_secret_key(data_dir)
    except (DataDirError, OSError) as exc:
        raise SettingsError(str(exc)) from None


def _public_url(env: Mapping[str, str]) -> str | None:
    """PUBLIC_URL as ``scheme://host[:port]`` (no path: the app is served at the root)."""
    raw = (env.get("PUBLIC_URL") or "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise SettingsError(f"PUBLIC_URL must be http(s)://host[:port] with no path, got {raw!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _forwarded_allow_ips(env: Mapping[str, str]) -> str:
    raw = env.get("FORWARDED_ALLOW_IPS")
    items = [item.strip() for item in ("127.0.0.1" if raw is None else raw).split(",")]
    if any(any(c.isspace() for c in item) for item in items):
        raise SettingsError(f"FORWARDED_ALLOW_IPS must be a comma-separated list, got {raw!r}")
    return ",".join(filter(None, items))


def _metrics_allow_ips(env: Mapping[str, str]) -> str:
    """Addresses or CIDR networks, comma-separated; each checked here, not at the first scrape."""
    raw = env.get("METRICS_ALLOW_IPS")
    items = [item.strip() for item in ("127.0.0.1" if raw is None else raw).split(",")]
    for item in filter(None, items):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(
                f"METRICS_ALLOW_IPS must be comma-separated addresses or networks, got {item!r}"
            ) from None
    return ",".join(filter(None, items))


def _metrics_token(env: Mapping[str, str]) -> str | None:
    raw = (env.get("METRICS_TOKEN") or "").strip()
    if raw and (len(raw) < METRICS_TOKEN_MIN or any(c.isspace() for c in raw)):
        raise SettingsError(
            f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN} characters, without spaces"
        )
    return raw or None


def _log_format(env: Mapping[str, str]) -> str:
    value = (env.get("LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise SettingsError(f"LOG_FORMAT must be text or json, got {env.get('LOG_FORMAT')!r}")
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``) over a ``.env`` file.

    Real environment variables win over the ``.env`` file, as python-dotenv does by
    default, so a deployment can override a checked-in development file.
    """
    env: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    data_dir = Path(env.get("ANALYTICS_DATA_DIR") or "data").expanduser()
    raw_db = (env.get("DATABASE_URL") or "").strip()
    db_configured = bool(raw_db)
    if not raw_db:
        raw_db = f"sqlite:///{(data_dir / 'analytics.db').resolve()}"
    # Checked in this order, so the first error reported is the same as it always was.
    raw_redis = _redis_url(env)
    serve = None if raw_redis else running_serve(data_dir)
    queue_name = _queue_name(env)
    ca_path = _ca_path(env)
    force_ssl = _bool(env, "FORCE_SSL", False)
    database_url = normalize_database_url(raw_db)
    if (force_ssl or ca_path) and database_url.get_backend_name() == "sqlite":
        raise SettingsError("TIDB_CA_PATH / FORCE_SSL need a MySQL/TiDB DATABASE_URL, not SQLite")

    return Settings(
        flask_host=(env.get("FLASK_HOST") or "0.0.0.0").strip(),
        flask_port=_int(env, "FLASK_PORT", 5000, 1, 65535),
        redis_url=raw_redis or (serve.redis_url if serve else ""),
        redis_url_configured=bool(raw_redis),
        queue_name=queue_name,
        database_url=database_url,
        database_url_configured=db_configured,
        tidb_ca_path=ca_path,
        force_ssl=force_ssl,
        data_dir=data_dir,
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 4, 1, 256),
        batch_size=_int(env, "BATCH_SIZE", 2000, 1, 10_000),
        flush_interval_ms=_int(env, "FLUSH_INTERVAL_MS", 200, 1, 60_000),
        max_queue_length=_int(env, "MAX_QUEUE_LENGTH", 1_000_000, 1, 1_000_000_000),
        heartbeat_ttl_s=_float(env, "WORKER_HEARTBEAT_TTL", 10.0, 1.0, 3600.0),
        shutdown_grace_s=_float(env, "WORKER_SHUTDOWN_GRACE", 20.0, 0.0, 3600.0),
        rollup_cache_size=_int(env, "ROLLUP_CACHE_SIZE", DEFAULT_ROLLUP_CACHE_SIZE, 0, 100_000_000),
        redis_cluster=_redis_cluster(env, raw_redis),
        queue_shards=_int(env, "QUEUE_SHARDS", 1, 1, 1024),
        redis_wait_replicas=_int(env, "REDIS_WAIT_REPLICAS", 0, 0, 16),
        queue_shards_previous=_int(env, "QUEUE_SHARDS_PREVIOUS", 0, 0, 1024),
        secret_key=_secret_key(env, data_dir),
        public_stats=_bool(env, "PUBLIC_STATS", False),
        forwarded_allow_ips=_forwarded_allow_ips(env),
        geoip_db=_geoip_db(env),
        metrics_allow_ips=_metrics_allow_ips(env),
        metrics_token=_metrics_token(env),
        metrics_port=_int(env, "METRICS_PORT", 0, 0, 65535),
        log_format=_log_format(env),
        registered_sites_only=_bool(env, "REGISTERED_SITES_ONLY", False),
        public_url=_public_url(env),
        serve_beside=serve,
    )


def _geoip_db(env: Mapping[str, str]) -> Path | None:
    raw = (env.get("GEOIP_DB") or "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(f"GEOIP_DB must name a readable .mmdb file, got {raw!r}")
    return path


def _redis_cluster(env: Mapping[str, str], raw_redis: str) -> bool:
    cluster = _bool(env, "REDIS_CLUSTER", False)
    if cluster and not raw_redis.startswith(("redis://", "rediss://")):
        raise SettingsError("REDIS_CLUSTER=true needs a redis:// or rediss:// REDIS_URL of a node")
    return cluster
