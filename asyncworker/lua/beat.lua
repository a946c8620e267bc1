-- Refresh a worker's heartbeat and, in the same step, its registration if a janitor
-- dropped it (a paused worker must stay findable, or its lists would never be adopted).
local heartbeat = KEYS[1]
local workers = KEYS[2]      -- hash: worker id -> registration
local payload = ARGV[1]
local ttl_ms = ARGV[2]
local worker_id = ARGV[3]
local registration = ARGV[4]

redis.call('SET', heartbeat, payload, 'PX', ttl_ms)
redis.call('HSETNX', workers, worker_id, registration)
return 1
