-- wrk script: POST the submissions in the file named by $BODIES, one JSON
-- object per line, as written by "candor bench --print-bodies", to
-- /v1/entries, each once, in order. It measures a log's submission
-- throughput with a load generator lighter than candor bench, which signs
-- nothing while it sends and checks no reply:
--
--   bin/candor bench --url URL --count 200000 --print-bodies > /tmp/bodies.txt
--   BODIES=/tmp/bodies.txt wrk -t1 -c256 -d15s --latency -s scripts/wrk-submit.lua URL
--
-- Use one thread (-t1): each thread would send the whole file. The thread
-- stops once every body is answered, so make enough of them for the run;
-- wrk's requests/s is over the time it ran. Any status but 2xx (201 for a
-- new entry) is counted as "Non-2xx or 3xx responses".
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do
  bodies[#bodies + 1] = line
end
if #bodies == 0 then
  error("no submissions in " .. os.getenv("BODIES"))
end

local sent, answered = 0, 0
local headers = { ["Content-Type"] = "application/json" }

request = function()
  sent = sent + 1
  -- Past the end, repeat the last body: the log answers it as a duplicate
  -- while the thread stops.
  return wrk.format("POST", "/v1/entries", headers, bodies[math.min(sent, #bodies)])
end

response = function(status, headers, body)
  answered = answered + 1
  if answered >= #bodies then
    wrk.thread:stop()
  end
end
