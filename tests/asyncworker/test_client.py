"""The Redis clients never re-send a command on their own.

A command that failed with a connection error or a timeout may have run, with only
its reply lost: re-sending the enqueue script would queue an event twice, re-sending
a move would put events into an in-flight list that the consumer does not know it
holds (and its acknowledgement would delete them). Errors reach the queue's callers,
which recover without repeating a write (503 at the edge, re-claim in a consumer).
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import DataError

from asyncworker.queue.client import Role, _HiredisPacking, make_client
from tests.conftest import REDIS_URL, make_settings


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("cluster", [False, True])
async def test_no_client_retries_a_command(role: Role, cluster: bool) -> None:
    settings = make_settings(
        REDIS_URL="redis://127.0.0.1:6379/0", REDIS_CLUSTER="true" if cluster else "false"
    )
    client = make_client(settings, role)
    try:
        if isinstance(client, RedisCluster):
            assert client.retry.get_retries() == 0
            node_retry = client.nodes_manager.connection_kwargs.get("retry")
            assert node_retry is None or node_retry.get_retries() == 0
        else:
            connection = client.connection_pool.make_connection()
            assert connection.retry.get_retries() == 0
    finally:
        await client.aclose()


PACKED_ARGS: list[tuple[object, ...]] = [
    ("PING",),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", "x"),
    ("EVALSHA", "a" * 40, 2, "{q}:1", "{q}:2", "é😀", b"\x00\xff", 12345678901234, 1.5, -7),
    ("EVALSHA", "b" * 40, 0, *[("x" * 60, 7)[i % 2] for i in range(3000)]),
]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6379/0"])
@pytest.mark.parametrize("role", [Role.WEB, Role.WORKER, Role.CLI, Role.CHECK])
async def test_standalone_clients_pack_commands_with_hiredis_into_redis_pys_bytes(
    role: Role, url: str
) -> None:
    """The standalone clients pack commands in C (asyncio redis-py's Python packer costs
    milliseconds per enqueue of a batch), into exactly the bytes redis-py's would send,
    over whatever connection kind the URL asks for; a value Redis cannot take is still
    refused with redis-py's DataError, before anything is sent."""
    client = make_client(make_settings(REDIS_URL=url), role)
    try:
        assert isinstance(client, Redis)
        kind = client.connection_pool.connection_class
        ours = client.connection_pool.make_connection()
        assert isinstance(ours, _HiredisPacking)
        (plain,) = (base for base in kind.__bases__ if base is not _HiredisPacking)
        theirs = plain()
        assert not isinstance(theirs, _HiredisPacking)
        for args in PACKED_ARGS:
            assert b"".join(ours.pack_command(*args)) == b"".join(theirs.pack_command(*args))
        for bad in (None, True, object()):
            with pytest.raises(DataError):
                ours.pack_command("SET", "k", bad)
    finally:
        await client.aclose()


async def test_a_script_round_trip_through_the_packing_client() -> None:
    client = make_client(make_settings(REDIS_URL=REDIS_URL), Role.WEB)
    try:
        assert isinstance(client, Redis)
        values = ["é😀", "x" * 10_000, *map(str, range(2000))]
        echoed = await client.eval("return ARGV", 0, *values)  # type: ignore[misc]
        assert [v.decode() for v in echoed] == values
    finally:
        await client.aclose()
