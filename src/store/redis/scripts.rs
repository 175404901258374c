//! The Lua scripts that make a read-and-write one atomic step on Redis (and one round trip).

/// KEYS[1] a user's cut-off, ARGV[1] the new one (ms), ARGV[2] its TTL (s): the later of the new
/// one and the stored one plus a millisecond. An unreadable value is kept: it revokes
/// everything (fail closed), and a number must not loosen it.
pub(super) const MOVE_CUTOFF_FORWARD: &str = r"
local stored = redis.call('GET', KEYS[1])
if not stored then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return
end
local current = tonumber(stored)
if current then
  local wanted = tonumber(ARGV[1])
  local next = current + 1
  if next < wanted then next = wanted end
  redis.call('SET', KEYS[1], string.format('%d', next), 'KEEPTTL')
end
redis.call('EXPIRE', KEYS[1], ARGV[2], 'GT')
";

/// `CounterStore::reserve` as one script, so it is atomic: a failures record is one hash (`n`
/// failures, `w` when they are forgotten, `l` locked until; unix milliseconds of the caller's
/// clock, as the SQL store keeps them), one key, so one cluster slot. KEYS[1] the record; ARGV
/// now, the window (ms), the free failures, then the locks (ms, `LockRule::locks`). Answers
/// {1, failures} when it counted the attempt, {0, failures} when the record is locked.
pub(super) const RESERVE: &str = r"
local now = tonumber(ARGV[1])
local record = redis.call('HMGET', KEYS[1], 'n', 'w', 'l')
local n = tonumber(record[1]) or 0
local w = tonumber(record[2]) or 0
local l = tonumber(record[3]) or 0
if l > now then
  return {0, n}
end
if w <= now then
  n = 0
  w = now + tonumber(ARGV[2])
end
n = n + 1
-- Unlocked is 0, not now: a reservation racing this one with an earlier clock reading (a
-- burst, or another instance's clock) must not find the record locked.
l = 0
local past_free = n - tonumber(ARGV[3])
if past_free > 0 and #ARGV > 3 then
  l = now + tonumber(ARGV[3 + math.min(past_free, #ARGV - 3)])
end
local function int(x) return string.format('%d', x) end
redis.call('HSET', KEYS[1], 'n', int(n), 'w', int(w), 'l', int(l))
redis.call('PEXPIRE', KEYS[1], int(math.max(w, l) - now))
return {1, n}
";

/// `RevocationStore::rotate` as one script, so one atomic step and one round trip (one `MGET`
/// reads every key: each call from Lua into Redis costs more than the key it reads); it decides
/// exactly as `decide_rotation` does (a contract test holds both to it). KEYS: the session's
/// revocation, the user's cut-off, the user's version, the token's own entry, the session's
/// rotation record (one user, so one cluster slot). ARGV: the session's start (ms), the
/// expected version (`?` unknown, `=` absent, `=<version>`), the presented `jti`, the record
/// to store if it wins, its TTL (s), now (ms), the grace (ms; 0: none, whatever the clocks).
/// Answers `{outcome, detail}`: `revoked`, `legacy` with the token's spend record, `reused`,
/// `user_changed` with the stored version (none when absent), `grace` with the stored record,
/// `rotated`.
pub(super) const ROTATE: &str = r"
local found = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local session, cutoff, version, own, stored = found[1], found[2], found[3], found[4], found[5]
if session then return {'revoked'} end
if cutoff and tonumber(ARGV[1]) <= (tonumber(cutoff) or math.huge) then
  return {'revoked'}
end
if own and string.sub(own, 1, 2) ~= 's:' then return {'revoked'} end
local within_grace = false
if not stored then
  if own then return {'legacy', own} end
else
  local current, previous, at = string.match(stored, '^([^:]+):%d+:%d+:([^:]+):(%d+)$')
  if not current then return {'revoked'} end
  if current ~= ARGV[3] then
    local grace = tonumber(ARGV[7])
    if previous == ARGV[3] and grace > 0 and tonumber(ARGV[6]) < tonumber(at) + grace then
      within_grace = true
    else
      return {'reused'}
    end
  end
end
local seen = '='
if version then seen = '=' .. version end
if seen ~= ARGV[2] then return {'user_changed', version} end
if within_grace then return {'grace', stored} end
redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[5])
return {'rotated'}
";

/// A poll for leased lookups (`store::leases`). KEYS[1] the revision, KEYS[2] the registered
/// leases (a sorted set: each lease length in ms, scored by when its registration ends, in ms
/// of Redis's clock); ARGV[1] the caller's lease (ms), ARGV[2] how long its registration lasts
/// (ms). Registers the lease (never shortening a registration), drops ended ones, and answers
/// the revision.
pub(super) const POLL_REVISION: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
redis.call('ZADD', KEYS[2], 'GT', now + tonumber(ARGV[2]), ARGV[1])
return tonumber(redis.call('GET', KEYS[1]) or '0')
";

/// After a write that bumped the revision, in the same `MULTI`: the longest lease registered
/// and not ended (ms), which the writer waits out. KEYS[1] the registered leases.
pub(super) const LONGEST_LEASE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local longest = 0
for _, lease in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  longest = math.max(longest, tonumber(lease) or 0)
end
return longest
";
