-- Adopt the in-flight list of a dead worker by renaming it onto the adopter's own list
-- (atomic, so only one adopter wins).
-- Returns 1 adopted, 0 nothing to adopt, -1 owner alive, -2 adopter busy.
local orphan = KEYS[1]       -- the dead consumer's in-flight list
local heartbeat = KEYS[2]    -- its worker's heartbeat
local mine = KEYS[3]         -- the adopter's in-flight list

if redis.call('EXISTS', heartbeat) == 1 then return -1 end
if redis.call('EXISTS', mine) == 1 then return -2 end
if redis.call('EXISTS', orphan) == 0 then return 0 end
redis.call('RENAME', orphan, mine)
return 1
