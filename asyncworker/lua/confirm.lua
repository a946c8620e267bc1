-- Before a batch is stored (with REDIS_WAIT_REPLICAS): check that the in-flight list still
-- ends with our marker and write that tail again, a write whose replication the caller's
-- WAIT then confirms, and with it every earlier move of the batch.
-- Returns 1 ours (rewritten), 0 not ours any more (adopted; nothing written).
local inflight = KEYS[1]
local marker = ARGV[1]

if redis.call('LINDEX', inflight, -1) ~= marker then return 0 end
redis.call('LSET', inflight, -1, marker)
return 1
