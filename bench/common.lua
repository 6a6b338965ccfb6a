-- Shared by the bench/*.lua wrk scripts (loaded with dofile from each).
--
-- Environment, set by scripts/bench:
--   BENCH_OP     the operation's name, printed in the report line
--   BENCH_TOKEN  a JWT; when set, every request carries `Authorization: Bearer <token>`
--
-- done() prints one machine-readable line that scripts/bench parses:
--   BENCH op=get requests=412345 seconds=10.002 rps=41226.3 p50_ms=1.201 ...
-- wrk reports latency in microseconds; the line gives milliseconds.

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end

local op = os.getenv("BENCH_OP") or "unknown"
local nthreads = 0

-- Runs in the main Lua state once per wrk thread, before the threads start:
-- give each thread a number so the scripts can make unique request bodies.
function setup(thread)
    nthreads = nthreads + 1
    thread:set("thread_id", nthreads)
end

function done(summary, latency, requests)
    local seconds = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "BENCH op=%s requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f"
            .. " max_ms=%.3f errors_connect=%d errors_read=%d errors_write=%d"
            .. " errors_status=%d errors_timeout=%d\n",
        op, summary.requests, seconds, summary.requests / seconds,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000,
        e.connect, e.read, e.write, e.status, e.timeout))
end
