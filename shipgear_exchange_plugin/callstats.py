"""Every store call, counted per account and API in Redis (the status engine's input).

One Redis hash per (account, API) holds a field per minute, ``"calls,failed,throttled,
slow"``, updated atomically by a small Lua script that also drops minutes older than the
status window; so a status read is one ``HGETALL`` of at most ~16 fields, whatever the
length of the history (PRODUCT.md §6). The hash also keeps the time and HTTP status of
the last call, the last failure's text and the last three calls' hard-failure flags
(connection error, 5xx, 401/403) for the "last 3 calls failed" rule. Keys expire on
their own a day after the last call.

Recording never fails a job: Redis unreachable, the call still happened, and the miss is
logged (once a minute at most).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import NoScriptError, RedisError

from .connectors.base import Api, CallRecord, Outcome

log = logging.getLogger(__name__)

PREFIX = "sgx:calls"
KEY_TTL = 86400

_RECORD = """
local key = KEYS[1]
local minute = tonumber(ARGV[1])
local failed, throttled = tonumber(ARGV[2]), tonumber(ARGV[3])
local slow, hard = tonumber(ARGV[4]), ARGV[5]
local field = 'm' .. minute
local current = redis.call('HGET', key, field)
local n, f, t, s = 0, 0, 0, 0
if current then
  local parts = {}
  for part in string.gmatch(current, '[^,]+') do parts[#parts + 1] = tonumber(part) end
  n, f, t, s = parts[1], parts[2], parts[3], parts[4]
else
  local oldest = minute - tonumber(ARGV[9])
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if string.sub(name, 1, 1) == 'm' and tonumber(string.sub(name, 2)) < oldest then
      redis.call('HDEL', key, name)
    end
  end
end
local packed = (n + 1) .. ',' .. (f + failed) .. ',' .. (t + throttled) .. ',' .. (s + slow)
redis.call('HSET', key, field, packed)
local recent = redis.call('HGET', key, 'recent') or ''
redis.call('HSET', key, 'recent', string.sub(hard .. recent, 1, 3),
           'last_at', ARGV[6], 'last_status', ARGV[7])
if ARGV[8] ~= '' then redis.call('HSET', key, 'last_error', ARGV[8]) end
redis.call('EXPIRE', key, tonumber(ARGV[10]))
return 1
"""


# Sums each hash's minutes inside the window on the server, so a read of 600 APIs moves
# 600 short rows instead of 12,000 fields. KEYS: the hashes; ARGV: newest minute, window.
_READ = """
local newest, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i, k in ipairs(KEYS) do
  local flat = redis.call('HGETALL', k)
  local n, f, t, s = 0, 0, 0, 0
  local last_at, last_status, last_error, recent = '', '0', '', ''
  for j = 1, #flat, 2 do
    local name, value = flat[j], flat[j + 1]
    if string.sub(name, 1, 1) == 'm' then
      local minute = tonumber(string.sub(name, 2))
      if minute and minute > newest - window and minute <= newest then
        local a, b, c, d = string.match(value, '(%d+),(%d+),(%d+),(%d+)')
        n, f, t, s = n + a, f + b, t + c, s + d
      end
    elseif name == 'last_at' then last_at = value
    elseif name == 'last_status' then last_status = value
    elseif name == 'last_error' then last_error = value
    elseif name == 'recent' then recent = value end
  end
  out[i] = {n, f, t, s, last_at, last_status, last_error, recent}
end
return out
"""


def key(account_id: int, api: Api | str) -> str:
    return f"{PREFIX}:{account_id}:{Api(api).value}"


def is_hard_failure(call: CallRecord) -> bool:
    """Connection errors, 5xx and refused credentials: the 'last 3 calls' Red rule."""
    if not call.outcome.is_error or call.throttled:
        return False
    status = call.http_status
    return status is None or status >= 500 or status in (401, 403)


def describe(call: CallRecord) -> str:
    if call.http_status is None:
        return "no answer (timeout or connection error)"
    return f"HTTP {call.http_status}"


class RedisCallRecorder:
    """The :class:`~.connectors.base.CallRecorder` the plugin uses in web and workers."""

    def __init__(self, connection: Redis, *, slow_ms: int = 5000, window_minutes: int = 16):
        self.connection = connection
        self.slow_ms = slow_ms
        self.window_minutes = window_minutes
        self._script = connection.register_script(_RECORD)
        self._last_warning = 0.0

    def record(self, call: CallRecord) -> None:
        self.record_many([call])

    def record_many(self, calls: list[CallRecord]) -> None:
        """Count calls in one round trip (a pipeline when there are several)."""
        if not calls:
            return
        try:
            if len(calls) == 1:
                self._record(calls[0], self.connection)
                return
            self._record_pipelined(calls)
        except RedisError as exc:
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("%d calls to account %s not recorded (status store: %s)",
                            len(calls), calls[0].account_id, exc)

    def _record(self, call: CallRecord, client) -> None:
        self._script(keys=[key(call.account_id, call.api)], args=self._args(call),
                     client=client)

    def _record_pipelined(self, calls: list[CallRecord]) -> None:
        """EVALSHA for each call in one round trip. redis-py's own way (a Script on a
        pipeline) first asks SCRIPT EXISTS, a second round trip per job; here the script
        is loaded only when the server answers NOSCRIPT (it restarted), and the pipeline
        sent again (nothing was counted: every EVALSHA failed)."""
        for _ in range(2):
            with self.connection.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.evalsha(self._script.sha, 1, key(call.account_id, call.api),
                                 *self._args(call))
                answers = pipe.execute(raise_on_error=False)
            missing = [a for a in answers if isinstance(a, NoScriptError)]
            if not missing:
                errors = [a for a in answers if isinstance(a, Exception)]
                if errors:
                    raise errors[0]
                return
            if len(missing) != len(answers):  # some counted, some not: count the rest
                calls = [c for c, a in zip(calls, answers, strict=True)
                         if isinstance(a, NoScriptError)]
            self.connection.script_load(_RECORD)
        raise NoScriptError("the call-recording script could not be loaded")

    def _args(self, call: CallRecord) -> list:
        failed = int(call.outcome.is_error and not call.throttled)
        return [int(call.at.timestamp()) // 60, failed, int(call.throttled),
                int(call.latency_ms > self.slow_ms), "H" if is_hard_failure(call) else "o",
                call.at.timestamp(), call.http_status or 0,
                describe(call) if call.outcome.is_error else "", self.window_minutes, KEY_TTL]

    def batch(self) -> BatchRecorder:
        """A recorder that keeps one job's calls and counts them together on flush()."""
        return BatchRecorder(self)


class BatchRecorder:
    """Calls of one write-back job, counted in one round trip when the job is done (the
    panel sees them a few milliseconds later, and the job saves a round trip per call)."""

    def __init__(self, target: RedisCallRecorder) -> None:
        self.target = target
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)

    def flush(self) -> None:
        calls, self.calls = self.calls, []
        self.target.record_many(calls)


@dataclass
class WindowStats:
    """What the status rules look at for one API of one account."""

    calls: int = 0
    failed: int = 0
    throttled: int = 0
    slow: int = 0
    last_at: dt.datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    recent_hard: str = ""  # newest first: "H" hard failure, "o" anything else


def read_many(connection: Redis, pairs: list[tuple[int, Api]], now: dt.datetime,
              window_minutes: int) -> dict[tuple[int, Api], WindowStats]:
    """Stats of many (account, API) pairs in one round trip, summed by Redis itself.
    Raises RedisError. (All keys in one script: a single Redis, not Redis Cluster.)"""
    if not pairs:
        return {}
    script = connection.register_script(_READ)  # EVALSHA, loaded once per server
    rows = script(keys=[key(a, api) for a, api in pairs],
                  args=[int(now.timestamp()) // 60, window_minutes])
    result = {}
    for pair, (n, f, t, s, last_at, last_status, last_error, recent) in zip(
            pairs, rows, strict=True):
        stats = WindowStats(calls=int(n), failed=int(f), throttled=int(t), slow=int(s),
                            recent_hard=recent.decode())
        if last_at:
            stats.last_at = dt.datetime.fromtimestamp(float(last_at), dt.UTC)
            stats.last_status = int(last_status) or None
        if last_error:
            stats.last_error = last_error.decode()
        result[pair] = stats
    return result


__all__ = ["CallRecord", "Outcome", "RedisCallRecorder", "WindowStats", "read_many"]
