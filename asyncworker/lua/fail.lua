-- Count one failed sign-in on each counter (per account, per client address), each
-- counter living `window` seconds from its first failure (a fixed window).
-- KEYS[1..n]: the counters. ARGV[1]: the window in seconds.
-- Returns the highest count after this failure.
local window = tonumber(ARGV[1])
local top = 0
for i = 1, #KEYS do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('EXPIRE', KEYS[i], window) end
  if n > top then top = n end
end
return top
