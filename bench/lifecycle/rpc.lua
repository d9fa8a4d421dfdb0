-- wrk script for bench/lifecycle.ts: Connect protocol, JSON, HTTP/1.1.
--
--   wrk -t2 -c50 -d10s -s bench/lifecycle/rpc.lua http://127.0.0.1:8080 -- <mode> <tag> [sessions-file]
--
-- mode:
--   start   StartSession for a new user every request (user_id and record_id
--           from <tag>, the thread id and a per-thread counter: unique per run)
--   append  AppendSessionEvent on a random session of sessions-file (one
--           session id a line), unique record_id per request
--   get     GetSession on a random session of sessions-file
--
-- done() prints one line "WRK_RESULT {json}" with the request count, duration,
-- latency percentiles (us) and error counts. wrk counts a response with an
-- HTTP status above 399 as a status error; Connect answers every unary error
-- with a 4xx/5xx status, so status_errors counts the failed RPCs.

local next_thread_id = 0

function setup(thread)
  next_thread_id = next_thread_id + 1
  thread:set("id", next_thread_id)
end

local PATH = "/sessionmanager.v1.SessionManagerService/"
local HEADERS = { ["Content-Type"] = "application/json", ["Connect-Protocol-Version"] = "1" }

local mode, tag, ids, count
local counter = 0

function init(args)
  mode = args[1]
  tag = args[2] or "t"
  if mode == "append" or mode == "get" then
    ids = {}
    for line in io.lines(args[3]) do
      if #line > 0 then ids[#ids + 1] = line end
    end
    count = #ids
    if count == 0 then error("no session ids in " .. tostring(args[3])) end
  elseif mode ~= "start" then
    error("unknown mode " .. tostring(mode))
  end
  math.randomseed(os.time() + 7919 * id)
end

function request()
  counter = counter + 1
  local key = tag .. "-" .. id .. "-" .. counter
  if mode == "start" then
    return wrk.format("POST", PATH .. "StartSession", HEADERS,
      '{"recordId":"start-' .. key .. '","userId":"wrk-' .. key .. '","metadata":{"channel":"voice"}}')
  elseif mode == "append" then
    return wrk.format("POST", PATH .. "AppendSessionEvent", HEADERS,
      '{"recordId":"evt-' .. key .. '","sessionId":"' .. ids[math.random(count)] ..
      '","type":"care.input.received","source":"speech-worker","payload":{"text":"hello"}}')
  else
    return wrk.format("POST", PATH .. "GetSession", HEADERS, '{"sessionId":"' .. ids[math.random(count)] .. '"}')
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
