-- wrk script for bench/service.py: POST /should_search with a unique observation_id per request, drawn from the
-- dry-run observations (one JSON object per line of args[1]); ids of 200 answers go to args[2]/ok-<thread>.txt.
-- Further arguments are extra request headers, "Name: value" each (the API key; "Connection: close").
-- Usage: wrk -s service_wrk.lua URL -- OBSERVATIONS_FILE OUT_DIR ID_PREFIX [HEADER ...]
local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   observations = {}
   for line in io.lines(args[1]) do
      if #line > 0 then table.insert(observations, line) end
   end
   ok_file = io.open(args[2] .. "/ok-" .. tid .. ".txt", "w")
   ok_file:setvbuf("line")  -- wrk never closes worker threads' Lua states: flush as we go
   prefix = args[3] .. "-" .. tid .. "-"
   counter, ok, other = 0, 0, 0
   headers = { ["Content-Type"] = "application/json" }
   for i = 4, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      headers[name] = value
   end
end

function request()
   counter = counter + 1
   local observation = observations[(counter - 1) % #observations + 1]
   local body = '{"observation_id":"' .. prefix .. counter .. '","observation":' .. observation .. '}'
   return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, body)
   if status == 200 then
      ok = ok + 1
      ok_file:write(body:match('"observation_id"%s*:%s*"([^"]+)"') or "?", "\n")
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local ok_total, other_total = 0, 0
   for _, thread in ipairs(threads) do
      ok_total = ok_total + thread:get("ok")
      other_total = other_total + thread:get("other")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"responses": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "ok": %d, "other": %d, ' ..
      '"socket_errors": %d}\n',
      summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
      ok_total, other_total, e.connect + e.read + e.write + e.timeout))
end
