-- Acknowledge a committed batch: record its dead letters, count its events down from the
-- sites' pending counts, and delete the in-flight list, only if the list still ends with
-- our marker (it was not adopted meanwhile).
-- Returns 1 acknowledged, 0 not ours any more (nothing written).
local inflight = KEYS[1]
local dead = KEYS[2]         -- the dead-letter list
local pending = KEYS[3]      -- events pending per site (enqueue.lua counts up)
local marker = ARGV[1]
local n_dead = tonumber(ARGV[2])  -- ARGV[3 .. 2 + n_dead]: the dead-letter entries,
                                  -- then pairs: a site, how many of its events the batch held

if redis.call('LINDEX', inflight, -1) ~= marker then return 0 end
for i = 3, 2 + n_dead do redis.call('LPUSH', dead, ARGV[i]) end
for i = 3 + n_dead, #ARGV, 2 do
  if redis.call('HINCRBY', pending, ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', pending, ARGV[i])
  end
end
redis.call('DEL', inflight)
return 1
