-- wrk script: GET random paths from the file named by $PATHS, one path per
-- line, as written by "candor bench --mode MODE --print-paths". It measures
-- a log's read throughput with a load generator lighter than candor bench:
--
--   bin/candor bench --url URL --mode tiles --count 20000 --print-paths > /tmp/tiles.txt
--   PATHS=/tmp/tiles.txt wrk -t1 -c64 -d10s -s scripts/wrk-paths.lua URL
local paths = {}
for line in io.lines(os.getenv("PATHS")) do
  paths[#paths + 1] = line
end
if #paths == 0 then
  error("no paths in " .. os.getenv("PATHS"))
end
math.randomseed(os.time())

request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end

-- Any status but 200 is counted by wrk as "Non-2xx or 3xx responses".
