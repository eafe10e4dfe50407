-- The baseline: GET /healthz, a trivial route of the same FastAPI app, through
-- the same hooks as orders.lua (dynamic request, response counting, delay), so
-- the client does the same work per request as in the order phases.
-- BENCH_PATH picks another GET route (e.g. /docs) for an extra baseline.

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./"
local common = dofile(here .. "common.lua")

function init(args)
   common.configure("GET", os.getenv("BENCH_PATH") or "/healthz")
end

function request()
   return wrk.format(nil, nil, nil, nil)
end

function response(status, headers, body)
   common.count(status, body)
end
