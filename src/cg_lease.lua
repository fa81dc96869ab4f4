-- client guard: the lease script (docs/redis.md), for a batch of clients.
--
-- ARGV[1]: the number of clients; ARGV[2]: the call's deadline (ms on
-- Redis's clock, 0: none): a call run later than that (its node gave it up:
-- a Redis stopped and resumed runs what its socket held) charges nothing
-- and fails with "LATE <Redis's TIME in ms>"; then per client: its number
-- of keys (one per limit), units wanted, how many of them were admitted
-- already (ahead of a lease), the horizon (ms: a rate may grant units that
-- the GCRA lets through up to that far ahead; 0: only those it lets
-- through now), a divisor d (a long lease: beyond those admitted, at most
-- what the tightest limit has left over d; 0: none), and per limit: "r" or
-- "w", count, period (ms), burst, and units given back (of a lease that
-- expired unspent on the node: taken off the limit's count first).  KEYS:
-- the keys of every client in turn.  For each client, in order: gives
-- back, grants min(wanted, what every limit still has), fewer near the end
-- of a window (but not fewer than those admitted), charges every limit,
-- and returns
-- { granted, ms until a unit is free when none is, the binding limit
-- (1-based), what the binding limit has left after the grant, what each
-- of 4 limits has left after it (0 past the client's), and the us from now
-- when the first and the last unit granted may be spent (0 and 0: all at
-- once) }: 10 integers per client in one flat array.  A client whose keys
-- fail (a key of another type) has the error text in place of "granted",
-- and the others of the call are served all the same.  A rate is a GCRA
-- bucket whose TAT (us, Redis TIME, read once per call) lives in the key;
-- a window is a counter in a key named after the window number.
--
-- Compiled into the module by bin/gen-c-string (src/cg_lease_lua.h).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local deadline = tonumber(ARGV[2])
if deadline > 0 and now > deadline * 1000 then
  return redis.error_reply(string.format('LATE %.0f', math.floor(now / 1000)))
end
local function lease(k, c, n)
  local want = tonumber(ARGV[c + 1])
  local owed = tonumber(ARGV[c + 2])
  local hz = tonumber(ARGV[c + 3]) * 1000
  local d = tonumber(ARGV[c + 4])
  local grant = want
  local wavail = nil
  local retry = 0
  local bind = 1
  local least = nil
  local st = {}
  local av = { 0, 0, 0, 0 }
  for i = 1, n do
    local b = c + 5 + (i - 1) * 5
    local count = tonumber(ARGV[b + 1])
    local period = tonumber(ARGV[b + 2]) * 1000
    local back = tonumber(ARGV[b + 4])
    local a, r, g
    if ARGV[b] == 'r' then
      local T = period / count
      local tau = tonumber(ARGV[b + 3]) * T
      local tat = tonumber(redis.call('GET', KEYS[k + i]) or now)
      if back > 0 and tat > now then
        tat = tat - back * T
        if tat < now then tat = now end
        redis.call('SET', KEYS[k + i], string.format('%.0f', tat),
                   'PX', math.ceil((tat - now) / 1000) + 1000)
      end
      if tat < now then tat = now end
      local x = now + tau - tat
      if x < 0 then a = 0 else a = math.floor(x / T) + 1 end
      r = tat - tau - now
      g = a
      if hz > 0 then
        x = x + hz
        if x < 0 then g = 0 else g = math.floor(x / T) + 1 end
        r = r - hz
      end
      st[i] = { tat, T, tau }
    else
      local used = tonumber(redis.call('GET', KEYS[k + i]) or 0)
      if back > used then back = used end
      if back > 0 then
        used = redis.call('DECRBY', KEYS[k + i], back)
      end
      a = count - used
      if a < 0 then a = 0 end
      r = period - (now % period)
      g = a
      if wavail == nil or a < wavail then wavail = a end
    end
    av[i] = a
    if least == nil or a < least then least = a; bind = i end
    if g < grant then grant = g end
    if g == 0 and r > retry then retry = r end
  end
  if d > 0 then
    local s = owed + math.floor(least / d)
    if s <= owed then s = owed + 1 end
    if s < grant then grant = s end
  end
  if wavail ~= nil and wavail < want * 8 then
    local s = math.floor(wavail / 8)
    if s < 1 then s = 1 end
    if s < owed then s = owed end
    if s < grant then grant = s end
  end
  local first, last = 0, 0
  if grant > 0 then
    for i = 1, n do
      local b = c + 5 + (i - 1) * 5
      if ARGV[b] == 'r' then
        local f = st[i][1] - st[i][3] - now
        local l = f + (grant - 1) * st[i][2]
        if f > first then first = f end
        if l > last then last = l end
        local tat = st[i][1] + grant * st[i][2]
        redis.call('SET', KEYS[k + i], string.format('%.0f', tat),
                   'PX', math.ceil((tat - now) / 1000) + 1000)
      else
        redis.call('INCRBY', KEYS[k + i], grant)
        redis.call('PEXPIRE', KEYS[k + i],
                   tonumber(ARGV[b + 2]) + 60000)
      end
    end
    retry = 0
  end
  for i = 1, n do
    av[i] = av[i] - grant
    if av[i] < 0 then av[i] = 0 end
  end
  local rest = least - grant
  if rest < 0 then rest = 0 end
  return grant, math.ceil(retry / 1000), bind, rest,
         av[1], av[2], av[3], av[4], math.ceil(first), math.ceil(last)
end
local out = {}
local k = 0
local c = 3
for j = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[c])
  local v = { pcall(lease, k, c, n) }
  if not v[1] then
    local e = v[2]
    if type(e) == 'table' then e = e.err end
    v = { false, 'ERR ' .. tostring(e), 0, 0, 0, 0, 0, 0, 0, 0, 0 }
  end
  for i = 1, 10 do
    out[10 * (j - 1) + i] = v[i + 1]
  end
  k = k + n
  c = c + 5 + 5 * n
end
return out
