-- Acknowledge a committed batch: record its dead letters and delete the in-flight list,
-- only if the list still ends with our marker (it was not adopted meanwhile).
-- Returns 1 acknowledged, 0 not ours any more (nothing written).
local inflight = KEYS[1]
local dead = KEYS[2]         -- the dead-letter list
local marker = ARGV[1]       -- ARGV[2..] are the dead-letter entries

if redis.call('LINDEX', inflight, -1) ~= marker then return 0 end
for i = 2, #ARGV do redis.call('LPUSH', dead, ARGV[i]) end
redis.call('DEL', inflight)
return 1
