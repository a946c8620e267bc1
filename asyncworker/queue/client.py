"""The Redis client of every role (single node or Redis Cluster) and the Lua scripts.

Only :mod:`asyncworker.queue` uses this module: it is the queue's half that knows how
to reach Redis, while the queue's package root knows what to do there.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections.abc import Iterator
from importlib import resources
from typing import Any, Protocol, TypeAlias, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from db.settings import Settings

# A Redis client of either kind: the queue uses only commands both route alike.
Client: TypeAlias = Redis | RedisCluster

# How long the web edge waits for replicas to acknowledge an enqueue (REDIS_WAIT_REPLICAS).
WAIT_TIMEOUT_MS = 500


class Role(enum.Enum):
    """Who talks to Redis, which decides the client's timeouts."""

    WEB = "web"
    WORKER = "worker"
    CLI = "cli"
    CHECK = "check"


# (connect timeout, socket timeout) per role; see make_client.
_TIMEOUTS = {
    Role.WEB: (1.0, 2.0),
    Role.CLI: (3.0, 10.0),
    Role.WORKER: (3.0, 10.0),
    Role.CHECK: (3.0, 3.0),
}


class _HiredisPacking(AbstractConnection):
    """Commands packed by hiredis (C), as redis-py's synchronous client packs them when
    hiredis is installed. Its asyncio client packs in Python, copying its buffer once per
    argument: one enqueue call of 100 events (about 1,300 arguments) took 2.7 ms to pack
    that way against 0.3 ms here, on the web edge's request path. Same bytes."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _HIREDIS.pack(*args)  # type: ignore[no-any-return]


# redis-py's own hiredis packer (the synchronous client's): it splits a command name
# given with its subcommand, and refuses what Redis cannot take with DataError.
_HIREDIS = HiredisRespSerializer()  # type: ignore[no-untyped-call]


_PACKED_BY_HIREDIS: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _packed_by_hiredis(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    """``cls`` packing with hiredis (one class per connection kind, made once)."""
    if cls not in _PACKED_BY_HIREDIS:
        _PACKED_BY_HIREDIS[cls] = type(f"Hiredis{cls.__name__}", (_HiredisPacking, cls), {})
    return _PACKED_BY_HIREDIS[cls]


def _pack_with_hiredis(client: Redis) -> Redis:
    """``client``'s pool makes its connections (TCP, TLS or Unix, as the URL says) with
    :class:`_HiredisPacking`; set before the first connection is made."""
    pool = client.connection_pool
    pool.connection_class = _packed_by_hiredis(pool.connection_class)
    return client


class _Cluster(RedisCluster):
    """A cluster client whose commands report a connection torn down under them as a
    ConnectionError (see :func:`connection_resets_as_redis_errors`), so every caller
    treats it as Redis being away: the web edge answers 503, a worker's consumer keeps
    its events and retries (an AttributeError would crash the consumer and stop the
    worker, leaving its shards unserved)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with connection_resets_as_redis_errors(self):
            return await super().execute_command(*args, **kwargs)


def make_client(settings: Settings, role: Role) -> Client:
    """The one place a Redis client is built, for a single node or a Redis Cluster.

    The web edge fails fast (POST /event answers 503 rather than hang with Redis away)
    and lets a burst above its pool wait up to 2 s for a connection instead of failing
    at once. The worker's socket timeout stays above its 1 s blocking BLMOVE. The CLI
    tools wait a little longer than the web; ``worker --check`` answers within seconds.

    With ``REDIS_CLUSTER`` the same timeouts apply per node. The cluster client has no
    blocking pool: past 256 connections to one node the web edge answers 503 at once.
    It follows MOVED/ASK redirections itself, but never re-sends a command after a
    connection error or a timeout: the command may have run and only its reply been
    lost, and running an enqueue or a move script twice would queue an event twice or
    move events into an in-flight list behind the consumer's back (lost at the
    acknowledgement). The caller sees the error instead: the web edge answers 503
    (the client retries, deduplicated by its ``event_id``), a consumer re-claims its
    in-flight list, which holds whatever did move.
    """
    connect, read = _TIMEOUTS[role]
    settings.require_redis()
    if settings.redis_cluster:
        web = role is Role.WEB
        return _Cluster.from_url(
            settings.redis_url,
            socket_connect_timeout=connect,
            socket_timeout=read,
            max_connections=256 if web else 2**31,
            retry=Retry(NoBackoff(), 0),
        )
    if role is Role.WEB:
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=256,
            timeout=2,
            socket_connect_timeout=connect,
            socket_timeout=read,
        )
        return _pack_with_hiredis(Redis.from_pool(pool))
    if role is Role.CLI:
        return _pack_with_hiredis(
            Redis.from_url(settings.redis_url, socket_connect_timeout=connect, socket_timeout=read)
        )
    return _pack_with_hiredis(
        Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=connect,
            socket_timeout=read,
            health_check_interval=30,
        )
    )


@contextlib.contextmanager
def connection_resets_as_redis_errors(client: Client) -> Iterator[None]:
    """Report a cluster connection torn down under a command as a Redis error (so 503).

    When the cluster client learns a new topology it closes the connections of the
    nodes it replaces, also those a concurrent command is using; that command then
    fails inside asyncio (RuntimeError: the handler is closed, or the stream writer
    is already gone: AttributeError) instead of with a ConnectionError.
    """
    try:
        yield
    except (RuntimeError, AttributeError) as exc:
        if not isinstance(client, RedisCluster):
            raise
        raise RedisConnectionError(f"cluster connection reset: {exc}") from exc


@functools.cache
def lua(name: str) -> str:
    """The source of ``asyncworker/lua/<name>.lua`` (shipped as package data)."""
    return (resources.files("asyncworker") / "lua" / f"{name}.lua").read_text("utf-8")


class HasClient(Protocol):
    """What a :class:`Script` needs of the object it is declared on: its client."""

    redis: Client


class Script:
    """A Lua file registered once per queue (so per client), declared beside its accessor.

    redis-py's :class:`AsyncScript` sends EVALSHA, loading the script only when Redis
    does not know it (first use, after a restart or a SCRIPT FLUSH), so the source
    crosses the network once rather than with every call. On a cluster the call goes
    to the master of its keys' slot (the keys of one script always share one slot).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.attr = f"_script_{name}"

    def __get__(self, queue: HasClient, owner: type[HasClient]) -> AsyncScript:
        script: AsyncScript | None = queue.__dict__.get(self.attr)
        if script is None:
            script = queue.redis.register_script(lua(self.name))
            queue.__dict__[self.attr] = script
        return script


async def eval_and_wait(
    client: Client, name: str, keys: list[str], args: list[Any], replicas: int
) -> tuple[Any, int]:
    """Run script ``name`` then ``WAIT replicas WAIT_TIMEOUT_MS`` on the same connection.

    WAIT counts the replicas that acknowledged the writes of *its own connection*, so
    both commands go out together on one connection: a pipeline on a single node, the
    master of the keys' slot on a cluster. Returns the script's result and the count.
    """
    source = lua(name)
    if isinstance(client, RedisCluster):
        await client.initialize()  # a no-op once the client knows the topology
        node: ClusterNode | None = client.get_node_from_key(keys[0])
        if node is None:  # the slot has no master right now (mid-failover)
            await client.nodes_manager.initialize()
            raise ConnectionError(f"no master serves the slot of {keys[0]!r}")
        commands = [
            PipelineCommand(0, "EVAL", source, len(keys), *keys, *args),
            PipelineCommand(1, "WAIT", replicas, WAIT_TIMEOUT_MS),
        ]
        try:
            await node.execute_pipeline(commands)
        except Exception:
            # The node may be gone (a failover): learn the new topology for next time.
            await client.nodes_manager.initialize()
            raise
        for command in commands:
            if isinstance(command.result, Exception):
                await client.nodes_manager.initialize()
                raise command.result
        return commands[0].result, int(cast(int, commands[1].result))
    pipe = client.pipeline(transaction=False)
    pipe.eval(source, len(keys), *keys, *args)
    pipe.wait(replicas, WAIT_TIMEOUT_MS)
    result, acked = await pipe.execute()
    return result, int(acked)
