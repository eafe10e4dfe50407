"""PostgreSQL: a batch of placements reads each listing and stock row once and writes once.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27

``stockguard_place_many`` called the one-order placement for every order of
a batch: about fifteen statements per order, the listing read three times, and
the hot stock row and listing updated once per order (each update a new row
version the next order's read walks past). On a hot listing that was the
sale's whole cost: the server's one writer session was busy 80 % of a selling
phase.

Now a batch keeps what it read in memory and decides every order against it:
each listing is read when the batch first meets it (and again once its stock
rows are locked, as the one-order placement reads it after its locks), each
stock row is locked and read once, a buyer's live units are counted once per
listing, and every decision updates those copies. At its end the batch writes
its orders, lines and movements in one statement each, and each stock row and
listing once. The rules are those of the one-order placement (0002, behind
the guard of 0010), decided in the same order with the same answers:
``tests/integration/test_postgres_batch_placement.py`` runs random batches
through both and compares every answer and every row they leave.
``bench/pg_growth.py`` (batches of 64, medians of 3 runs): 1,378 to 1,417 holds/s
before, 4,039 to 4,282 after.

``stockguard_place`` (one order: the service's path when a batch's statement
failed) becomes a batch of one, and the functions that decided one order
before (0002's, with 0006's, 0007's and 0011's wrappers) are dropped: the
rules live in one function.

What the batch reads once, it holds to for the batch: a listing's terms
changed by the catalog while a batch runs apply from the next batch (its
orders are decided as if the batch ran just before the change), and an order
id another process commits meanwhile makes the batch's insert fail, which the
writer answers by deciding the batch's orders one by one.
"""

from alembic import op

from stockguard.stores.sql.migrations.earlier import revision_module

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PLACE_MANY = r"""
CREATE OR REPLACE FUNCTION stockguard_place_many(p_orders jsonb)
RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    -- What the batch has read, kept up to date with its own decisions.
    v_listings jsonb := '{}'::jsonb;  -- listing id -> its row (JSON null: unknown), sold by this batch too
    v_levels jsonb := '{}'::jsonb;    -- sku -> [[warehouse, free, reserved + committed], ...], locked
    v_taken jsonb;                    -- order ids the store holds or this batch placed
    v_used jsonb := '{}'::jsonb;      -- [listing, buyer] -> the buyer's live units, for limits
    v_first_expiry double precision;  -- the earliest expiry of this batch's holds
    -- What it writes at its end.
    w_order text[] := '{}'; w_buyer text[] := '{}'; w_deduction text[] := '{}'; w_status text[] := '{}';
    w_now double precision[] := '{}'; w_expires double precision[] := '{}';
    w_lines text[] := '{}'; w_alloc text[] := '{}';
    w_line_order text[] := '{}'; w_line_listing text[] := '{}'; w_line_buyer text[] := '{}';
    w_line_quantity bigint[] := '{}';
    w_move_at double precision[] := '{}'; w_move_sku text[] := '{}'; w_move_warehouse text[] := '{}';
    w_move_delta bigint[] := '{}'; w_move_order text[] := '{}';
    w_sold_listing text[] := '{}'; w_sold_units bigint[] := '{}';
    -- One order.
    v_order jsonb; v_id text; v_buyer text; v_lines jsonb; v_now double precision;
    v_line jsonb; v_comp jsonb; v_lid text; v_listing jsonb; v_quantity bigint; v_key text;
    v_deduction text; v_hold integer; v_need jsonb; v_skus text[]; v_new_skus text[]; v_unlocked boolean;
    v_sku text; v_sku_levels jsonb; v_wanted bigint; v_available bigint; v_short boolean;
    v_free bigint; v_take bigint; v_alloc jsonb; v_alloc_at integer[];
    v_refusal jsonb; v_fallback boolean; v_expires double precision; v_count bigint;
    v_outcome jsonb; v_outcomes jsonb[] := '{}'; v_at double precision;
    i integer; j integer;
BEGIN
    SELECT COALESCE(jsonb_object_agg(o.order_id, true), '{}'::jsonb) INTO v_taken FROM orders o
        WHERE o.order_id = ANY(ARRAY(SELECT value->>0 FROM jsonb_array_elements(p_orders)));

    -- Each element: [order_id, buyer_id, lines, now]
    FOR v_order IN SELECT value FROM jsonb_array_elements(p_orders) LOOP
        v_id := v_order->>0;
        v_buyer := v_order->>1;
        v_lines := v_order->2;
        v_now := (v_order->>3)::double precision;
        v_at := GREATEST(v_at, v_now);
        v_outcome := NULL;
        v_refusal := NULL;
        v_fallback := v_taken ? v_id;  -- a replay or a conflict
        v_deduction := NULL;
        v_hold := NULL;
        v_need := '{}'::jsonb;
        v_skus := '{}';
        v_unlocked := false;

        IF NOT v_fallback THEN
            FOR i IN 0 .. jsonb_array_length(v_lines) - 1 LOOP
                v_lid := v_lines->i->>0;
                IF NOT v_listings ? v_lid THEN
                    SELECT to_jsonb(l) || jsonb_build_object(
                               '_components', l.components::jsonb,
                               '_locked', false,
                               -- as the guard of 0010: rules the service decides itself
                               '_service', (l.screening IS NOT NULL OR l.per_device_limit IS NOT NULL
                                            OR l.per_address_limit IS NOT NULL OR l.quota_period IS NOT NULL
                                            OR l.warehouse_choice IS NOT NULL OR l.presale IS NOT NULL))
                        INTO v_listing FROM listings l WHERE l.listing_id = v_lid;
                    v_listings := v_listings || jsonb_build_object(v_lid, v_listing);
                END IF;
                v_listing := v_listings->v_lid;
                IF jsonb_typeof(v_listing) = 'null' OR (v_listing->>'_service')::boolean
                   OR v_listing->>'deduction' <> COALESCE(v_deduction, v_listing->>'deduction') THEN
                    v_fallback := true;  -- unknown listing, rules of the service's own, mixed strategies
                    EXIT;
                END IF;
                v_deduction := v_listing->>'deduction';
                v_hold := LEAST(COALESCE(v_hold, (v_listing->>'hold_seconds')::integer),
                                (v_listing->>'hold_seconds')::integer);
                FOR j IN 0 .. jsonb_array_length(v_listing->'_components') - 1 LOOP
                    v_comp := v_listing->'_components'->j;
                    v_sku := v_comp->>0;
                    IF NOT v_need ? v_sku THEN
                        v_skus := v_skus || v_sku;
                        v_unlocked := v_unlocked OR NOT v_levels ? v_sku;
                    END IF;
                    v_need := jsonb_set(v_need, ARRAY[v_sku], to_jsonb(COALESCE((v_need->>v_sku)::bigint, 0)
                                        + (v_comp->>1)::bigint * (v_lines->i->>1)::bigint));
                END LOOP;
            END LOOP;
        END IF;

        IF NOT v_fallback THEN
            -- The same locks, in the same order, as every other writer; each row once per batch.
            IF v_unlocked THEN
                v_new_skus := ARRAY(SELECT k FROM unnest(v_skus) k WHERE NOT v_levels ? k);
                PERFORM 1 FROM levels l WHERE l.sku = ANY(v_new_skus)
                    ORDER BY l.sku, l.warehouse FOR UPDATE OF l;
                v_levels := v_levels || (
                    SELECT jsonb_object_agg(s.sku, COALESCE((
                        SELECT jsonb_agg(jsonb_build_array(
                                   l.warehouse, l.on_hand - l.reserved - l.committed - l.safety,
                                   l.reserved + l.committed)
                               ORDER BY COALESCE(w.priority, 100), l.warehouse COLLATE "C")
                        FROM levels l LEFT JOIN warehouses w ON w.name = l.warehouse
                        WHERE l.sku = s.sku), '[]'::jsonb))
                    FROM unnest(v_new_skus) AS s(sku));
            END IF;
            IF cardinality(v_skus) <> 1 THEN
                v_skus := ARRAY(SELECT k FROM jsonb_object_keys(v_need) k ORDER BY k COLLATE "C");
            END IF;
            -- A listing first read before its stock rows were locked is read again now.
            FOR i IN 0 .. jsonb_array_length(v_lines) - 1 LOOP
                v_lid := v_lines->i->>0;
                IF NOT (v_listings->v_lid->>'_locked')::boolean THEN
                    SELECT v_listings->v_lid || jsonb_build_object(
                               'sold', l.sold, 'per_buyer_limit', l.per_buyer_limit, 'quota', l.quota,
                               '_locked', true)
                        INTO v_listing FROM listings l WHERE l.listing_id = v_lid;
                    v_listings := jsonb_set(v_listings, ARRAY[v_lid], v_listing);
                END IF;
            END LOOP;

            FOR i IN 0 .. jsonb_array_length(v_lines) - 1 LOOP
                v_lid := v_lines->i->>0;
                v_listing := v_listings->v_lid;
                IF v_listing->>'per_buyer_limit' IS NOT NULL THEN
                    v_key := jsonb_build_array(v_lid, v_buyer)::text;
                    IF NOT v_used ? v_key THEN
                        SELECT COALESCE(SUM(ol.quantity), 0) INTO v_count
                            FROM order_lines ol JOIN orders o ON o.order_id = ol.order_id
                            WHERE ol.buyer_id = v_buyer AND ol.listing_id = v_lid
                              AND o.status IN ('placed', 'reserved', 'paid', 'shipped');
                        v_used := v_used || jsonb_build_object(v_key, v_count);
                    END IF;
                    v_count := (v_used->>v_key)::bigint;
                    IF v_count + (v_lines->i->>1)::bigint > (v_listing->>'per_buyer_limit')::bigint THEN
                        v_refusal := jsonb_build_object('outcome', 'limit_exceeded', 'listing', v_lid,
                                                        'used', v_count,
                                                        'limit', (v_listing->>'per_buyer_limit')::bigint);
                        EXIT;
                    END IF;
                END IF;
            END LOOP;

            IF v_refusal IS NULL THEN
                FOR i IN 0 .. jsonb_array_length(v_lines) - 1 LOOP
                    v_lid := v_lines->i->>0;
                    v_listing := v_listings->v_lid;
                    IF v_listing->>'quota' IS NOT NULL AND (v_listing->>'sold')::bigint
                       + (v_lines->i->>1)::bigint > (v_listing->>'quota')::bigint THEN
                        v_refusal := jsonb_build_object('outcome', 'quota', 'listing', v_lid,
                                                        'quota', (v_listing->>'quota')::bigint);
                        EXIT;
                    END IF;
                END LOOP;
            END IF;

            IF v_refusal IS NULL THEN
                v_alloc := '[]'::jsonb;
                v_alloc_at := '{}';
                FOREACH v_sku IN ARRAY v_skus LOOP  -- in the order of their names
                    v_wanted := (v_need->>v_sku)::bigint;
                    v_sku_levels := v_levels->v_sku;
                    -- As rules.item_available: a shortage anywhere stops the item's sales.
                    v_short := false;
                    v_available := 0;
                    FOR j IN 0 .. jsonb_array_length(v_sku_levels) - 1 LOOP
                        v_free := (v_sku_levels->j->>1)::bigint;
                        v_short := v_short OR ((v_sku_levels->j->>2)::bigint > 0 AND v_free < 0);
                        v_available := v_available + GREATEST(0, v_free);
                    END LOOP;
                    IF v_short OR v_available < v_wanted THEN
                        v_refusal := jsonb_build_object('outcome', 'sold_out', 'sku', v_sku,
                                                        'wanted', v_wanted);
                        EXIT;
                    END IF;
                    FOR j IN 0 .. jsonb_array_length(v_sku_levels) - 1 LOOP
                        v_take := LEAST(v_wanted, (v_sku_levels->j->>1)::bigint);
                        IF v_take > 0 THEN
                            v_alloc := v_alloc || jsonb_build_array(
                                jsonb_build_array(v_sku, v_sku_levels->j->>0, v_take));
                            v_alloc_at := v_alloc_at || j;
                            v_wanted := v_wanted - v_take;
                        END IF;
                        EXIT WHEN v_wanted = 0;
                    END LOOP;
                END LOOP;
            END IF;

            IF v_refusal IS NOT NULL THEN
                -- Holds that ran out may be what stands in the way: the service sweeps and decides.
                PERFORM 1 FROM orders WHERE status = 'reserved' AND expires_at <= v_now LIMIT 1;
                IF FOUND OR v_first_expiry <= v_now THEN
                    v_fallback := true;
                ELSE
                    v_outcome := v_refusal;
                END IF;
            END IF;
        END IF;

        IF v_fallback THEN
            v_outcome := '{"outcome": "fallback"}'::jsonb;
        ELSIF v_outcome IS NULL THEN
            IF v_deduction = 'reserve' THEN
                v_expires := v_now + v_hold;
                v_first_expiry := LEAST(v_first_expiry, v_expires);
            ELSE
                v_expires := NULL;
            END IF;
            v_taken := v_taken || jsonb_build_object(v_id, true);
            w_order := w_order || v_id;
            w_buyer := w_buyer || v_buyer;
            w_deduction := w_deduction || v_deduction;
            w_status := w_status || CASE WHEN v_deduction = 'payment' THEN 'placed' ELSE 'reserved' END;
            w_now := w_now || v_now;
            w_expires := w_expires || v_expires;
            w_lines := w_lines || v_lines::text;
            w_alloc := w_alloc || CASE WHEN v_deduction = 'payment' THEN '[]' ELSE v_alloc::text END;
            FOR i IN 0 .. jsonb_array_length(v_lines) - 1 LOOP
                v_lid := v_lines->i->>0;
                v_quantity := (v_lines->i->>1)::bigint;
                w_line_order := w_line_order || v_id;
                w_line_listing := w_line_listing || v_lid;
                w_line_buyer := w_line_buyer || v_buyer;
                w_line_quantity := w_line_quantity || v_quantity;
                v_key := jsonb_build_array(v_lid, v_buyer)::text;
                IF v_used ? v_key THEN
                    v_used := jsonb_set(v_used, ARRAY[v_key],
                                        to_jsonb((v_used->>v_key)::bigint + v_quantity));
                END IF;
                IF v_deduction <> 'payment' THEN
                    v_listings := jsonb_set(v_listings, ARRAY[v_lid, 'sold'],
                                            to_jsonb((v_listings->v_lid->>'sold')::bigint + v_quantity));
                    w_sold_listing := w_sold_listing || v_lid;
                    w_sold_units := w_sold_units || v_quantity;
                END IF;
            END LOOP;
            IF v_deduction = 'payment' THEN
                v_outcome := '{"outcome": "placed"}'::jsonb;  -- nothing is held until payment
            ELSE
                FOR i IN 0 .. jsonb_array_length(v_alloc) - 1 LOOP
                    v_sku := v_alloc->i->>0;
                    v_take := (v_alloc->i->>2)::bigint;
                    j := v_alloc_at[i + 1];
                    w_move_at := w_move_at || v_now;
                    w_move_sku := w_move_sku || v_sku;
                    w_move_warehouse := w_move_warehouse || (v_alloc->i->>1);
                    w_move_delta := w_move_delta || v_take;
                    w_move_order := w_move_order || v_id;
                    v_levels := jsonb_set(v_levels, ARRAY[v_sku, j::text], jsonb_build_array(
                        v_alloc->i->>1,
                        (v_levels->v_sku->j->>1)::bigint - v_take,
                        (v_levels->v_sku->j->>2)::bigint + v_take));
                END LOOP;
                v_outcome := jsonb_build_object('outcome', 'reserved', 'expires_at', v_expires,
                                                'allocations', v_alloc);
            END IF;
        END IF;
        v_outcomes := v_outcomes || v_outcome;
    END LOOP;

    IF cardinality(w_order) > 0 THEN
        INSERT INTO orders (order_id, buyer_id, deduction, status, created_at, updated_at, expires_at,
                            lines, allocations)
            SELECT x.o, x.b, x.d, x.s, x.t, x.t, x.e, x.l, x.a
            FROM unnest(w_order, w_buyer, w_deduction, w_status, w_now, w_expires, w_lines, w_alloc)
                AS x(o, b, d, s, t, e, l, a);
        INSERT INTO order_lines (order_id, listing_id, buyer_id, quantity)
            SELECT * FROM unnest(w_line_order, w_line_listing, w_line_buyer, w_line_quantity);
        INSERT INTO movements (at, sku, warehouse, counter, delta, reason, order_id)
            SELECT x.t, x.s, x.w, 'reserved', x.d, 'hold', x.o
            FROM unnest(w_move_at, w_move_sku, w_move_warehouse, w_move_delta, w_move_order)
                WITH ORDINALITY AS x(t, s, w, d, o, n)
            ORDER BY x.n;
        UPDATE levels l SET reserved = l.reserved + x.units
            FROM (SELECT y.s AS sku, y.w AS warehouse, SUM(y.d) AS units
                  FROM unnest(w_move_sku, w_move_warehouse, w_move_delta) AS y(s, w, d) GROUP BY 1, 2) x
            WHERE l.sku = x.sku AND l.warehouse = x.warehouse;
        UPDATE listings SET sold = sold + x.units
            FROM (SELECT y.l AS listing_id, SUM(y.u) AS units
                  FROM unnest(w_sold_listing, w_sold_units) AS y(l, u) GROUP BY 1) x
            WHERE listings.listing_id = x.listing_id;
        -- The change events of every order placed, and of the stock and listings its holds changed.
        PERFORM stockguard_emit(
            COALESCE((SELECT jsonb_agg(jsonb_build_array(x.s, x.w, x.d) ORDER BY x.n)
                      FROM unnest(w_move_sku, w_move_warehouse, w_move_delta)
                          WITH ORDINALITY AS x(s, w, d, n)),
                     '[]'::jsonb),
            w_order, ARRAY(SELECT DISTINCT unnest(w_sold_listing)), v_at);
    END IF;
    RETURN to_jsonb(v_outcomes);
END;
$$;
"""


# One order (the service's path when a batch's statement failed) is a batch of one, so the
# rules live in one function.
PLACE_ONE = r"""
CREATE OR REPLACE FUNCTION stockguard_place(
    p_order_id text, p_buyer_id text, p_lines jsonb, p_now double precision
) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RETURN stockguard_place_many(
        jsonb_build_array(jsonb_build_array(p_order_id, p_buyer_id, p_lines, p_now)))->0;
END;
$$;
"""

SIGNATURE = "(text, text, jsonb, double precision)"
_0011 = revision_module("0011_postgres_events_once_per_batch")
# What decided one order before, called per order by 0011's stockguard_place_many: dropped here,
# made again by the downgrade (in this order: each calls those before it).
ONE_ORDER_BEFORE = (
    # 0002's function, renamed by 0006 and 0007 (its guards and events moved around it).
    revision_module("0002_postgres_one_step_placement").PLACE.replace(
        "CREATE OR REPLACE FUNCTION stockguard_place(", "CREATE FUNCTION stockguard_place_core("
    ),
    revision_module("0007_change_events_outbox").PLACE_PLAIN,  # unused since 0011
    _0011.QUIET,
    _0011.EMIT_PLACED,
)
DROPPED = (
    f"stockguard_place_quiet{SIGNATURE}",
    f"stockguard_place_plain{SIGNATURE}",
    f"stockguard_place_core{SIGNATURE}",
    "stockguard_emit_placed(jsonb, double precision)",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PLACE_MANY)
        op.execute(PLACE_ONE)
        for function in DROPPED:
            op.execute(f"DROP FUNCTION {function}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function in ONE_ORDER_BEFORE:
            op.execute(function)
        op.execute(_0011.PLACE)
        op.execute(_0011.PLACE_MANY)  # CREATE OR REPLACE drops the function's SET as well
