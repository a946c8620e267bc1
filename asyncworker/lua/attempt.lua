-- Count one sign-in attempt before its password is checked, or refuse it: atomic, so any
-- number of concurrent attempts get at most each counter's limit of checks.
-- Every counter lives `window` seconds from its first attempt (a fixed window).
-- KEYS[1..n]: the counters. ARGV[1]: the window in seconds; ARGV[1 + i]: KEYS[i]'s limit.
-- Returns 0 when counted (every counter incremented), else the seconds until the latest
-- of the counters at their limit expires (nothing incremented).
local window = tonumber(ARGV[1])
local wait = 0
for i = 1, #KEYS do
  local n = tonumber(redis.call('GET', KEYS[i]) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    wait = math.max(wait, redis.call('TTL', KEYS[i]), 1)
  end
end
if wait > 0 then return wait end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], window) end
end
return 0
