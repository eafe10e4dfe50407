"""The gate's Lua scripts. Each touches one listing's keys only, all under one hash tag
(``keys.py``), so each runs atomically on a single Redis and on one node of a cluster.

A listing's keys:
  state    hash: tokens (admissions left), limit (units per buyer, 0: none), epoch (set by
           load), seq (counts every change: a Redis restored from an old snapshot answers
           a lower one than its clients have seen)
  orders   hash: order id -> "buyer quantity" of every admitted order
  buyers   hash: buyer id -> units admitted (kept only when there is a limit)
"""

# KEYS: state, orders, buyers. ARGV: order_id, buyer_id, quantity of one order or of
# several, decided in turn as if each were a call of its own (a batch costs the server and
# the client one call instead of one each). Answers, per order, {outcome, seq, detail...}:
# "unloaded" (no state: load from the store first; no seq), "replay" (the id was admitted;
# its "buyer quantity"), "limit" (used, limit), "sold_out" (tokens left), "admitted" (tokens
# left), the numbers as integers. The state is read in one HMGET and written in one HSET:
# each redis.call costs the server, and this script is the hot path. Integers it stores are
# formatted by hand: Lua's own number to string turns 15 digits into 1e+14.
ADMIT = """
local state = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'limit', 'tokens')
local answers = {}
if not state[1] then
    for i = 1, #ARGV, 3 do
        answers[#answers + 1] = {'unloaded'}
    end
    return answers
end
local seq = tonumber(state[2] or '0')
local limit = tonumber(state[3] or '0')
local tokens = tonumber(state[4] or '0')
local changed = false
for i = 1, #ARGV, 3 do
    local order_id, buyer_id, quantity = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local admitted = redis.call('HGET', KEYS[2], order_id)
    local used = 0
    if not admitted and limit > 0 then
        used = tonumber(redis.call('HGET', KEYS[3], buyer_id) or '0')
    end
    if admitted then
        answers[#answers + 1] = {'replay', seq, admitted}
    elseif limit > 0 and used + quantity > limit then
        answers[#answers + 1] = {'limit', seq, used, limit}
    elseif tokens < quantity then
        answers[#answers + 1] = {'sold_out', seq, tokens}
    else
        seq = seq + 1
        tokens = tokens - quantity
        changed = true
        redis.call('HSET', KEYS[2], order_id, buyer_id .. ' ' .. ARGV[i + 2])
        if limit > 0 then
            redis.call('HINCRBY', KEYS[3], buyer_id, quantity)
        end
        answers[#answers + 1] = {'admitted', seq, tokens}
    end
end
if changed then
    redis.call('HSET', KEYS[1], 'tokens', string.format('%d', tokens), 'seq', string.format('%d', seq))
end
return answers
"""

# KEYS: state, orders, buyers. ARGV: order_id, then "tokens" to give its tokens back
# (the store refused the order: its units are still the gate's) or "forget" (the order
# ended, cancelled or expired, and its units went back to the store's own stock).
# Either way the order stops counting for its buyer's limit. Once only, whoever asks
# how often: answers the units it undid (0 the second time).
RELEASE = """
local admitted = redis.call('HGET', KEYS[2], ARGV[1])
if not admitted then
    return 0
end
local buyer, quantity = string.match(admitted, '^(%S+) (%d+)$')
quantity = tonumber(quantity)
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] == 'tokens' then
    redis.call('HINCRBY', KEYS[1], 'tokens', quantity)
end
local left = redis.call('HINCRBY', KEYS[3], buyer, -quantity)
if left <= 0 then
    redis.call('HDEL', KEYS[3], buyer)
end
redis.call('HINCRBY', KEYS[1], 'seq', 1)
return quantity
"""

# KEYS: state, orders, buyers. ARGV: epoch, tokens, limit, seq (to start from: above
# any the loader has seen), then order_id, buyer_id, quantity triples of the live orders
# the store holds for the listing. Replaces whatever the gate held for the listing, in
# one step, and answers the seq it starts from: above the loader's and above the one it
# replaces (answers the loader has not read yet may carry that one), so seq never goes
# back across a reload.
LOAD = """
local seq = math.max(tonumber(ARGV[4]), tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') + 1)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local limit = tonumber(ARGV[3])
for i = 5, #ARGV, 3 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2])
    if limit > 0 then
        redis.call('HINCRBY', KEYS[3], ARGV[i + 1], tonumber(ARGV[i + 2]))
    end
end
redis.call('HSET', KEYS[1], 'tokens', ARGV[2], 'limit', ARGV[3], 'epoch', ARGV[1],
           'seq', string.format('%d', seq))
return seq
"""

# KEYS: state. ARGV: "at_most" or "at_least", and a number of tokens: the tokens become
# at most (the store has fewer units left) or at least (the store has more) that many.
# Answers the tokens now, or -1 for an unloaded gate (nothing changes then).
BOUND = """
local tokens = redis.call('HGET', KEYS[1], 'tokens')
if not redis.call('HGET', KEYS[1], 'epoch') or not tokens then
    return -1
end
tokens = tonumber(tokens)
local bound = tonumber(ARGV[2])
if (ARGV[1] == 'at_most' and tokens > bound) or (ARGV[1] == 'at_least' and tokens < bound) then
    redis.call('HSET', KEYS[1], 'tokens', bound)
    redis.call('HINCRBY', KEYS[1], 'seq', 1)
    return bound
end
return tokens
"""
