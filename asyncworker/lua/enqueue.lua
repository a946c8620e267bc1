-- Enqueue a group of events at the web edge (one request's, or several requests' that
-- arrived together): each at most once per event_id, never past the cap, and each
-- sessionized when asked: its visitor's visit is continued or opened and appended to
-- the message (db/visit.py documents the format).
-- Returns one result per event: 1 accepted, 0 duplicate of an event_id accepted within the
-- TTL, -1 refused because the queue is at the cap (then nothing is written for it: no
-- visit advances for an event that was not queued). With all_or_none, a group that does
-- not fit under the cap is refused whole.
--
-- KEYS[1]                      the queue list
-- KEYS[2]                      this minute's hash of accepted events per site
-- KEYS[3 + 3*(i-1)]            event i's dedupe key (any key of the slot if it has no event_id)
-- KEYS[4 + 3*(i-1)]            its visitor's visit state under today's visitor id
-- KEYS[5 + 3*(i-1)]            the same under yesterday's id (= the previous key if none)
-- KEYS[#KEYS]                  the hash of events pending per site (finish.lua counts down)
-- ARGV[1..7]                   max_length, seen_ttl, received_ttl, waited ("1" when the
--                              caller WAITs for replicas after this script), the longest
--                              pause inside a visit (microseconds), the state's TTL (ms),
--                              all_or_none ("1": one request's batch; "0": independent
--                              requests that arrived together, each fitting or not)
-- ARGV[8 + 9*(i-1) ..]         event i: payload (when sessionized, without its final '}'),
--                              site_id, dedupe ("1": it has an event_id), sessionize ("1"),
--                              time (microseconds), visitor id, the id of the visit it opens
--                              if it does, the visit dimensions (JSON object) if it opens one,
--                              "p" .. path for a pageview or ""
local queue, received, pending = KEYS[1], KEYS[2], KEYS[#KEYS]
local max_length = tonumber(ARGV[1])
local seen_ttl, received_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local waited = ARGV[4]
local gap, state_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local all_or_none = ARGV[7] == '1'
local n_events = (#ARGV - 7) / 9

local results = {}
local length = redis.call('LLEN', queue)
if all_or_none and length + n_events > max_length then
  for i = 1, n_events do results[i] = -1 end
  return results
end

local function num(x) return string.format('%.0f', x) end
local function page_json(p) if p then return cjson.encode(string.sub(p, 2)) end return 'null' end
local function state_json(n, first, last, entry, exit)
  return '[' .. num(n) .. ',' .. num(first) .. ',' .. num(last) .. ',' ..
    page_json(entry) .. ',' .. page_json(exit) .. ']'
end
local fields = {'id', 'n', 'first', 'last', 'start', 'entry', 'exit', 'dims', 'visitor'}

-- Continue or open the visit of an event at time ts; returns its ',"visit":{...}}' tail.
local function sessionize(visit_key, earlier_key, ts, visitor, new_id, dims, page)
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
  return ',"visit":{"visitor":"' .. visitor .. '","id":"' .. id ..
    '","seq":' .. num(n) .. ',"start":' .. num(start) .. ',"dims":' .. dims ..
    ',"before":' .. before .. ',"after":' .. state_json(n, first, last, entry, exit) .. '}}'
end

for i = 1, n_events do
  local k, a = 3 + 3 * (i - 1), 8 + 9 * (i - 1)
  local seen, payload, site_id = KEYS[k], ARGV[a], ARGV[a + 1]
  local fresh = true
  if length >= max_length then
    results[i] = -1
    fresh = nil
  elseif ARGV[a + 2] == '1' and not redis.call('SET', seen, '1', 'NX', 'EX', seen_ttl) then
    -- A write (the same TTL again), so that the caller's WAIT covers the original's push.
    if waited == '1' then redis.call('PEXPIRE', seen, math.max(redis.call('PTTL', seen), 1)) end
    fresh = false
  end
  if fresh then
    if ARGV[a + 3] == '1' then
      payload = payload .. sessionize(KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[a + 4]),
        ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8])
    end
    length = redis.call('LPUSH', queue, payload)
    redis.call('HINCRBY', received, site_id, 1)
    redis.call('HINCRBY', pending, site_id, 1)
    results[i] = 1
  elseif fresh == false then
    results[i] = 0
  end
end
redis.call('EXPIRE', received, received_ttl)
return results
