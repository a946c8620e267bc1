-- Move one dead letter back onto the queue, once, even if two requeues race.
-- Returns 1 moved, 0 already gone.
local dead = KEYS[1]
local queue = KEYS[2]
local entry = ARGV[1]        -- the exact dead-letter entry
local raw = ARGV[2]          -- the message it holds, as received

if redis.call('LREM', dead, 1, entry) == 1 then
  redis.call('LPUSH', queue, raw)
  return 1
end
return 0
