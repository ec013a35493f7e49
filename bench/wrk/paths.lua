-- wrk script: unique request paths, per-status counts, and a JSON summary line.
-- Arguments (after `--`): NONCE TEMPLATE [TEMPLATE...]
--   Each template may contain {id}. Request k of a thread uses template (k mod T) and the id
--   NONCE-<thread>-<k div T>, so with T templates every original is asked in T variants in a
--   row (spread over the thread's connections, as a page's <img srcset> is) and no two
--   requests are the same. A template without {id} repeats one URL (the `hot` scenario).

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("tid", thread_count)
   table.insert(threads, thread)
end

local nonce, templates, counter
statuses = {}  -- global: done() reads it from each thread with thread:get

function init(args)
   nonce = args[1]
   templates = {}
   for i = 2, #args do
      table.insert(templates, args[i])
   end
   counter = 0
   statuses = {}
end

function request()
   local n = #templates
   local k = counter
   counter = counter + 1
   local template = templates[(k % n) + 1]
   local id = nonce .. "-" .. tid .. "-" .. math.floor(k / n)
   local path = template:gsub("{id}", id)
   return wrk.format("GET", path)
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
   local merged = {}
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses")
      for key, value in pairs(counts) do
         merged[key] = (merged[key] or 0) + value
      end
   end
   local parts = {}
   for key, value in pairs(merged) do
      table.insert(parts, string.format('"%s": %d', key, value))
   end
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, ' ..
      '"statuses": {%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, table.concat(parts, ", ")))
end
