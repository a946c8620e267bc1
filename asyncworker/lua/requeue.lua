-- Move one dead letter back onto the queue, once, even if two requeues race; its site
-- (when known) has one more event pending.
-- Returns 1 moved, 0 already gone.
local dead = KEYS[1]
local queue = KEYS[2]
local pending = KEYS[3]      -- events pending per site (enqueue.lua, finish.lua)
local entry = ARGV[1]        -- the exact dead-letter entry
local raw = ARGV[2]          -- the message it holds, as received
local site = ARGV[3]         -- its site_id, or '' when the message names none

if redis.call('LREM', dead, 1, entry) == 1 then
  redis.call('LPUSH', queue, raw)
  if site ~= '' then redis.call('HINCRBY', pending, site, 1) end
  return 1
end
return 0
