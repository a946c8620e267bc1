-- Enqueue one event at the web edge, at most once per event_id, never past the cap.
-- Returns 1 accepted, 0 duplicate of an event_id accepted within the TTL, -1 queue full
-- (and then nothing is written).
local queue = KEYS[1]        -- the queue list
local seen = KEYS[2]         -- the event_id's dedupe key (any key of the slot if none)
local received = KEYS[3]     -- this minute's hash of accepted events per site
local payload = ARGV[1]      -- the event in its wire format
local max_length = tonumber(ARGV[2])
local site_id = ARGV[3]
local dedupe = ARGV[4]       -- "1" when the event carries an event_id
local seen_ttl = tonumber(ARGV[5])
local received_ttl = tonumber(ARGV[6])
local waited = ARGV[7]       -- "1" when the caller WAITs for replicas after this script

if redis.call('LLEN', queue) >= max_length then return -1 end
if dedupe == '1' then
  if not redis.call('SET', seen, '1', 'NX', 'EX', seen_ttl) then
    -- A write (the same TTL again), so that the caller's WAIT covers the original's push.
    if waited == '1' then redis.call('PEXPIRE', seen, math.max(redis.call('PTTL', seen), 1)) end
    return 0
  end
end
redis.call('LPUSH', queue, payload)
redis.call('HINCRBY', received, site_id, 1)
redis.call('EXPIRE', received, received_ttl)
return 1
