-- Claim an in-flight list: seal it with a fresh batch marker unless its tail already is
-- one, and return it (newest first, marker last). One step, so a janitor adopting the
-- list in between cannot leave the owner holding events under a marker the adopted list
-- does not carry. Re-registers the worker, as move.lua does.
local inflight = KEYS[1]
local workers = KEYS[2]
local marker = ARGV[1]       -- a fresh batch marker
local worker_id = ARGV[2]
local registration = ARGV[3]
local prefix = ARGV[4]       -- what every batch marker starts with

redis.call('HSETNX', workers, worker_id, registration)
local tail = redis.call('LINDEX', inflight, -1)
if not tail or string.sub(tail, 1, #prefix) ~= prefix then
  redis.call('RPUSH', inflight, marker)
end
return redis.call('LRANGE', inflight, 0, -1)
