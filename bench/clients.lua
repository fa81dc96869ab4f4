-- wrk script: per-client X-Client-Id headers, and a machine-readable summary.
--
--   BENCH_MIX=hot   10 hot clients (hot-0 .. hot-9), round robin
--   BENCH_MIX=many  10 hot clients take every other request; the other half
--                   goes round robin over 10,000 cold clients (cold-0 ..)
--   BENCH_PATH      request path (default /)
--   BENCH_DELAY_MS  per-connection pause between requests (0: none), to
--                   offer a fixed rate: about connections*1000/delay r/s
--
-- done() prints one line "BENCH_JSON {...}" with requests, non-2xx/3xx
-- responses, errors and the latency percentiles in microseconds.

local mix   = os.getenv("BENCH_MIX") or "hot"
local path  = os.getenv("BENCH_PATH") or "/"
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local nhot  = tonumber(os.getenv("BENCH_HOT") or "10")
local ncold = tonumber(os.getenv("BENCH_COLD") or "10000")
local prefix = os.getenv("BENCH_PREFIX") or ""

local hot, cold = {}, {}
local i, h, c = 0, 0, 0

function init(args)
    for k = 0, nhot - 1 do
        hot[#hot + 1] = wrk.format("GET", path,
            { ["X-Client-Id"] = prefix .. "hot-" .. k })
    end
    if mix == "many" then
        for k = 0, ncold - 1 do
            cold[#cold + 1] = wrk.format("GET", path,
                { ["X-Client-Id"] = prefix .. "cold-" .. k })
        end
    end
end

function request()
    i = i + 1
    if mix == "many" and i % 2 == 0 then
        c = c + 1
        if c > #cold then c = 1 end
        return cold[c]
    end
    h = h + 1
    if h > #hot then h = 1 end
    return hot[h]
end

if delay_ms > 0 then
    function delay()
        return delay_ms
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
        '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
        '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
        summary.requests, summary.duration, summary.bytes,
        e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9),
        latency.max, latency.mean))
end
