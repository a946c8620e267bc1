-- Give back one attempt counted by attempt.lua (a success, or a check that never ran),
-- never below zero and never creating a counter.
-- KEYS[1..n]: the counters.
for i = 1, #KEYS do
  local n = tonumber(redis.call('GET', KEYS[i]) or '0')
  if n > 1 then redis.call('DECR', KEYS[i]) elseif n == 1 then redis.call('DEL', KEYS[i]) end
end
return 0
