-- Drop a worker's registration, only if it is silent and owns no in-flight list, in one
-- step, so a list created meanwhile keeps its worker findable.
-- Returns 1 dropped, 0 kept.
local workers = KEYS[1]
local heartbeat = KEYS[2]    -- KEYS[3..] are every in-flight list of the worker
local worker_id = ARGV[1]

if redis.call('EXISTS', heartbeat) == 1 then return 0 end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
redis.call('HDEL', workers, worker_id)
return 1
