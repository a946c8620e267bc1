-- Move up to N events, oldest first, from the queue into a consumer's in-flight list.
-- Returns the events moved. Re-registers the worker first if a janitor dropped it during
-- a pause: a list may only exist while its worker is registered, or no janitor would
-- ever find it.
local queue = KEYS[1]
local inflight = KEYS[2]
local workers = KEYS[3]      -- hash: worker id -> registration
local count = tonumber(ARGV[1])
local worker_id = ARGV[2]
local registration = ARGV[3]

redis.call('HSETNX', workers, worker_id, registration)
local out = {}
for i = 1, count do
  local v = redis.call('LMOVE', queue, inflight, 'RIGHT', 'LEFT')
  if not v then break end
  out[i] = v
end
return out
