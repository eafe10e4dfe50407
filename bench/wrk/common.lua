-- Shared by the wrk scripts of bench/http_load.py: thread ids, an optional
-- request quota, status counting, and one JSON line of results from done().
--
-- Configuration comes from the environment (so the token never shows in ps):
--   BENCH_TOKEN    bearer token sent with every request
--   BENCH_THREADS  wrk's -t, to split the quota and the id space between threads
--   BENCH_QUOTA    total requests to send over all threads; 0 = no cap (run for -d)
--
-- Why a quota needs delay(): wrk has no request cap, and stopping a thread from
-- response() alone would let every other connection of the thread send one more
-- request first. delay() runs before each request is built, so it hands out the
-- thread's quota one request at a time and parks every connection (a one-hour
-- delay) once the quota is handed out; response() stops the thread when the
-- last of its quota is answered. Every phase uses the same hooks, quota or not,
-- so the client does the same work per request in every phase.
--
-- wrk's own duration is no use with a quota: its main thread sleeps for the
-- whole -d whatever the threads do. So each thread notes (CLOCK_MONOTONIC,
-- through LuaJIT's FFI) when it built its first request and when it got its
-- last answer, done() reports the span from the first to the last over all
-- threads, and a thread that finished its quota prints BENCH_THREAD_DONE so
-- the harness can end wrk (SIGINT) as soon as every thread is done.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local common = {}

local threads = {} -- main state only: every thread, for done()
local PARK_MS = 3600000

-- Main state: give each thread its id and its share of the quota.
function setup(thread)
   local id = #threads
   local total = tonumber(os.getenv("BENCH_THREADS") or "1")
   local quota = tonumber(os.getenv("BENCH_QUOTA") or "0")
   local share = 0
   if quota > 0 then
      share = math.floor(quota / total)
      if id < quota % total then
         share = share + 1
      end
   end
   thread:set("thread_id", id)
   thread:set("thread_count", total)
   thread:set("quota", share)
   table.insert(threads, thread)
end

-- Thread state from here on.
scheduled = 0 -- requests handed out by delay()
answered = 0 -- responses received
counts = {} -- "201", "409:sold_out", "409:other", "200", ... -> count
first_us = 0 -- when the first request was about to be built
last_us = 0 -- when the last answer came

function common.configure(method, path)
   wrk.method = method
   wrk.path = path
   wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
   if method == "POST" then
      wrk.headers["Content-Type"] = "application/json"
   end
end

function delay()
   if first_us == 0 then
      first_us = now_us()
   end
   if quota == 0 or scheduled < quota then
      scheduled = scheduled + 1
      return 0
   end
   return PARK_MS
end

function common.count(status, body)
   local key = tostring(status)
   if status == 409 then
      if body and string.find(body, '"code":"sold_out"', 1, true) then
         key = "409:sold_out"
      else
         key = "409:other"
      end
   end
   counts[key] = (counts[key] or 0) + 1
   answered = answered + 1
   last_us = now_us()
   if quota > 0 and answered == quota then
      io.write("BENCH_THREAD_DONE " .. thread_id .. "\n")
      io.stdout:flush()
      wrk.thread:stop()
   end
end

local function encode(value)
   local kind = type(value)
   if kind == "table" then
      local parts = {}
      for k, v in pairs(value) do
         table.insert(parts, string.format("%q:%s", tostring(k), encode(v)))
      end
      table.sort(parts)
      return "{" .. table.concat(parts, ",") .. "}"
   elseif kind == "number" then
      return string.format("%.17g", value)
   elseif kind == "string" then
      return string.format("%q", value)
   elseif kind == "boolean" then
      return tostring(value)
   end
   return "null"
end

-- Main state: add up the threads' counters and print one line the harness parses.
-- The latency object is wrk's histogram after its coordinated-omission
-- correction (wrk 4: stats_correct() adds, for every answer slower than
-- run time / answers per connection, synthetic samples at that interval below
-- it), so a few stalled requests raise p90/p99 far above what any single
-- connection saw; the harness compares the mean with Little's law to show it.
function done(summary, latency, requests)
   local total = {}
   local sent = 0
   local received = 0
   local first = nil
   local last = 0
   for _, thread in ipairs(threads) do
      for key, n in pairs(thread:get("counts")) do
         total[key] = (total[key] or 0) + n
      end
      sent = sent + thread:get("scheduled")
      received = received + thread:get("answered")
      local started = thread:get("first_us")
      if started > 0 and (first == nil or started < first) then
         first = started
      end
      last = math.max(last, thread:get("last_us"))
   end
   local percentiles = {}
   for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
      percentiles[tostring(p)] = latency:percentile(p)
   end
   local result = {
      duration_us = summary.duration,
      span_us = first and (last - first) or 0,
      requests = summary.requests,
      bytes = summary.bytes,
      errors = summary.errors,
      sent = sent,
      answered = received,
      statuses = total,
      latency_us = {
         min = latency.min,
         max = latency.max,
         mean = latency.mean,
         stdev = latency.stdev,
         percentiles = percentiles,
      },
   }
   io.write("BENCH_RESULT " .. encode(result) .. "\n")
end

return common
