-- POST /v1/orders with a unique order id and a buyer out of BENCH_BUYERS distinct ones.
--
--   BENCH_PHASE         prefix of the order ids ("sell", "soldout"): ids never repeat across phases
--   BENCH_LISTING       the listing every order is for (quantity 1)
--   BENCH_BUYERS        how many distinct buyer ids there are (b0 .. b<BUYERS-1>)
--   BENCH_BUYER_OFFSET  where this phase starts in the buyer sequence
--
-- Thread t (of T) numbers its requests n = 0, 1, 2, ...; its global sequence
-- number is t + n * T, so no two threads ever build the same id, and with a
-- quota of Q requests split as common.lua does, the sequence numbers are
-- exactly 0 .. Q-1: Q orders from Q distinct buyers.

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./"
local common = dofile(here .. "common.lua")

local phase = os.getenv("BENCH_PHASE") or "orders"
local listing = os.getenv("BENCH_LISTING") or "hot"
local buyers = tonumber(os.getenv("BENCH_BUYERS") or "100000")
local buyer_offset = tonumber(os.getenv("BENCH_BUYER_OFFSET") or "0")
local counter = 0

function init(args)
   common.configure("POST", "/v1/orders")
end

function request()
   local sequence = thread_id + counter * thread_count
   counter = counter + 1
   local body = string.format(
      '{"order_id":"%s-%d-%d","buyer_id":"b%d","lines":[{"listing_id":"%s","quantity":1}]}',
      phase,
      thread_id,
      counter,
      (buyer_offset + sequence) % buyers,
      listing
   )
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   common.count(status, body)
end
