-- wrk script: one fixed request repeated (any method, headers, a body read from a file), with
-- per-status counts and the JSON summary line of paths.lua (bench/run.py reads both alike).
-- Arguments (after `--`): METHOD BODY_FILE|- ["Name: value" ...]
--   The `library` scenario posts one prebuilt multipart upload this way (useUniqueFileName
--   names each stored file anew) and asks the same listing URL over and over.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

statuses = {}  -- global: done() reads it from each thread with thread:get

function init(args)
   wrk.method = args[1]
   if args[2] ~= "-" then
      local file = assert(io.open(args[2], "rb"))
      wrk.body = file:read("*a")
      file:close()
   end
   for i = 3, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      wrk.headers[name] = value
   end
   statuses = {}
   -- No request() function: wrk builds this one request once per thread, after init.
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
