-- wrk's request mix for test_servers.py: heavy, light, waiting and garbage-making requests.
local paths = {"/heavy", "/light", "/light", "/wait", "/garbage", "/heavy", "/light", "/wait"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
