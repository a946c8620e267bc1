-- Enqueue one event at the web edge, at most once per event_id, never past the cap, and
-- (with KEYS[4] and KEYS[5]) sessionize it: continue or open its visitor's visit and
-- append the visit to the message (db/visit.py documents the format).
-- Returns 1 accepted, 0 duplicate of an event_id accepted within the TTL, -1 queue full
-- (and then nothing is written: no visit advances for an event that was not queued).
local queue = KEYS[1]        -- the queue list
local seen = KEYS[2]         -- the event_id's dedupe key (any key of the slot if none)
local received = KEYS[3]     -- this minute's hash of accepted events per site
local visit_key = KEYS[4]    -- the visitor's visit state under today's visitor id
local earlier_key = KEYS[5]  -- the same under yesterday's id (= KEYS[4] if none)
local payload = ARGV[1]      -- the event in its wire format (sessionized: without its final '}')
local max_length = tonumber(ARGV[2])
local site_id = ARGV[3]
local dedupe = ARGV[4]       -- "1" when the event carries an event_id
local seen_ttl = tonumber(ARGV[5])
local received_ttl = tonumber(ARGV[6])
local waited = ARGV[7]       -- "1" when the caller WAITs for replicas after this script
local ts = tonumber(ARGV[8])          -- the event's time, integer microseconds
local visitor = ARGV[9]               -- today's visitor id (32 hex)
local new_id = ARGV[10]               -- the id of the visit this event opens, if it does
local dims = ARGV[11]                 -- the visit dimensions (a JSON object), if it opens one
local page = ARGV[12]                 -- "p" .. path for a pageview, "" otherwise
local gap = tonumber(ARGV[13])        -- the longest pause inside a visit, microseconds
local state_ttl = tonumber(ARGV[14])  -- how long a visit's state is kept, milliseconds

if redis.call('LLEN', queue) >= max_length then return -1 end
if dedupe == '1' then
  if not redis.call('SET', seen, '1', 'NX', 'EX', seen_ttl) then
    -- A write (the same TTL again), so that the caller's WAIT covers the original's push.
    if waited == '1' then redis.call('PEXPIRE', seen, math.max(redis.call('PTTL', seen), 1)) end
    return 0
  end
end

local function num(x) return string.format('%.0f', x) end
local function page_json(p) if p then return cjson.encode(string.sub(p, 2)) end return 'null' end
local function state_json(n, first, last, entry, exit)
  return '[' .. num(n) .. ',' .. num(first) .. ',' .. num(last) .. ',' ..
    page_json(entry) .. ',' .. page_json(exit) .. ']'
end

if visit_key then
  local fields = {'id', 'n', 'first', 'last', 'start', 'entry', 'exit', 'dims', 'visitor'}
  local key = visit_key
  local s = redis.call('HMGET', key, unpack(fields))
  if not s[1] and earlier_key ~= visit_key then
    local earlier = redis.call('HMGET', earlier_key, unpack(fields))
    if earlier[1] then key, s = earlier_key, earlier end
  end
  local id, n, first, last, start, entry, exit = s[1], 0, ts, ts, ts, false, false
  local before = 'null'
  if s[1] and ts <= tonumber(s[4]) + gap and ts >= tonumber(s[3]) - gap then
    n, first, last, start, entry, exit = tonumber(s[2]), tonumber(s[3]), tonumber(s[4]),
      tonumber(s[5]), s[6], s[7]
    dims, visitor = s[8], s[9]
    before = state_json(n, first, last, entry, exit)
  else
    key, id = visit_key, new_id
    redis.call('DEL', key)
  end
  n, first, last = n + 1, math.min(first, ts), math.max(last, ts)
  if page ~= '' then
    if not entry then entry = page end
    exit = page
  end
  redis.call('HSET', key, 'id', id, 'n', num(n), 'first', num(first), 'last', num(last),
    'start', num(start), 'dims', dims, 'visitor', visitor)
  if entry then redis.call('HSET', key, 'entry', entry, 'exit', exit) end
  redis.call('PEXPIRE', key, state_ttl)
  payload = payload .. ',"visit":{"visitor":"' .. visitor .. '","id":"' .. id ..
    '","seq":' .. num(n) .. ',"start":' .. num(start) .. ',"dims":' .. dims ..
    ',"before":' .. before .. ',"after":' .. state_json(n, first, last, entry, exit) .. '}}'
end

redis.call('LPUSH', queue, payload)
redis.call('HINCRBY', received, site_id, 1)
redis.call('EXPIRE', received, received_ttl)
return 1
