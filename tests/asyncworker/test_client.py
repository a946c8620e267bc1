"""The Redis clients never re-send a command on their own.

A command that failed with a connection error or a timeout may have run, with only
its reply lost: re-sending the enqueue script would queue an event twice, re-sending
a move would put events into an in-flight list that the consumer does not know it
holds (and its acknowledgement would delete them). Errors reach the queue's callers,
which recover without repeating a write (503 at the edge, re-claim in a consumer).
"""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster

from asyncworker.queue.client import Role, make_client
from tests.conftest import make_settings


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
