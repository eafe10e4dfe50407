"""PostgreSQL: place a plain new order in one statement, on the server.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

A hold is about a dozen statements; on PostgreSQL each is a network round
trip, and the stock row stays locked across all of them. This function makes
the common case one round trip: a new order id, known listings of one
deduction strategy, no expired holds in the way of a refusal. It decides with
the same rules as ``stockguard.service.orders`` (limits, quota, shortages,
allocation by warehouse priority) and answers ``fallback`` for everything
else, which the service then handles itself. The contract suite runs every
placement on PostgreSQL through it, so the two cannot drift apart unnoticed.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PLACE = r"""
CREATE OR REPLACE FUNCTION stockguard_place(
    p_order_id text, p_buyer_id text, p_lines jsonb, p_now double precision
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_line jsonb;
    v_comp jsonb;
    v_listing listings%ROWTYPE;
    v_deduction text;
    v_hold integer;
    v_need jsonb := '{}'::jsonb;
    v_sku text;
    v_wanted bigint;
    v_available bigint;
    v_short boolean;
    v_level record;
    v_take bigint;
    v_alloc jsonb := '[]'::jsonb;
    v_used bigint;
    v_expires double precision;
    v_refusal jsonb;
BEGIN
    PERFORM 1 FROM orders WHERE order_id = p_order_id;
    IF FOUND THEN
        RETURN '{"outcome": "fallback"}'::jsonb;  -- a replay or a conflict
    END IF;

    FOR v_line IN SELECT value FROM jsonb_array_elements(p_lines) LOOP
        SELECT * INTO v_listing FROM listings WHERE listing_id = v_line->>0;
        IF NOT FOUND OR v_listing.deduction <> COALESCE(v_deduction, v_listing.deduction) THEN
            RETURN '{"outcome": "fallback"}'::jsonb;  -- unknown listing, mixed strategies
        END IF;
        v_deduction := v_listing.deduction;
        v_hold := LEAST(COALESCE(v_hold, v_listing.hold_seconds), v_listing.hold_seconds);
        FOR v_comp IN SELECT value FROM jsonb_array_elements(v_listing.components::jsonb) LOOP
            v_sku := v_comp->>0;
            v_need := jsonb_set(v_need, ARRAY[v_sku], to_jsonb(
                COALESCE((v_need->>v_sku)::bigint, 0) + (v_comp->>1)::bigint * (v_line->>1)::bigint));
        END LOOP;
    END LOOP;

    -- The same locks, in the same order, as every other writer.
    PERFORM 1 FROM levels l WHERE l.sku IN (SELECT jsonb_object_keys(v_need))
        ORDER BY l.sku, l.warehouse FOR UPDATE OF l;

    FOR v_line IN SELECT value FROM jsonb_array_elements(p_lines) LOOP
        SELECT * INTO v_listing FROM listings WHERE listing_id = v_line->>0;
        IF v_listing.per_buyer_limit IS NOT NULL THEN
            SELECT COALESCE(SUM(ol.quantity), 0) INTO v_used
                FROM order_lines ol JOIN orders o ON o.order_id = ol.order_id
                WHERE ol.buyer_id = p_buyer_id AND ol.listing_id = v_listing.listing_id
                  AND o.status IN ('placed', 'reserved', 'paid', 'shipped');
            IF v_used + (v_line->>1)::bigint > v_listing.per_buyer_limit THEN
                v_refusal := jsonb_build_object('outcome', 'limit_exceeded', 'listing', v_listing.listing_id,
                                                'used', v_used, 'limit', v_listing.per_buyer_limit);
                EXIT;
            END IF;
        END IF;
    END LOOP;

    IF v_refusal IS NULL THEN
        FOR v_line IN SELECT value FROM jsonb_array_elements(p_lines) LOOP
            SELECT * INTO v_listing FROM listings WHERE listing_id = v_line->>0;
            IF v_listing.quota IS NOT NULL AND v_listing.sold + (v_line->>1)::bigint > v_listing.quota THEN
                v_refusal := jsonb_build_object('outcome', 'quota', 'listing', v_listing.listing_id,
                                                'quota', v_listing.quota);
                EXIT;
            END IF;
        END LOOP;
    END IF;

    IF v_refusal IS NULL THEN
        FOR v_sku IN SELECT k FROM jsonb_object_keys(v_need) k ORDER BY k COLLATE "C" LOOP
            v_wanted := (v_need->>v_sku)::bigint;
            -- As rules.item_available: a shortage anywhere stops the item's sales.
            SELECT COALESCE(bool_or(reserved + committed > 0
                                    AND on_hand - reserved - committed - safety < 0), false),
                   COALESCE(SUM(GREATEST(0, on_hand - reserved - committed - safety)), 0)
                INTO v_short, v_available FROM levels WHERE sku = v_sku;
            IF v_short OR v_available < v_wanted THEN
                v_refusal := jsonb_build_object('outcome', 'sold_out', 'sku', v_sku, 'wanted', v_wanted);
                EXIT;
            END IF;
            FOR v_level IN
                SELECT l.warehouse, l.on_hand - l.reserved - l.committed - l.safety AS available
                FROM levels l LEFT JOIN warehouses w ON w.name = l.warehouse
                WHERE l.sku = v_sku ORDER BY COALESCE(w.priority, 100), l.warehouse COLLATE "C"
            LOOP
                v_take := LEAST(v_wanted, v_level.available);
                IF v_take > 0 THEN
                    v_alloc := v_alloc
                        || jsonb_build_array(jsonb_build_array(v_sku, v_level.warehouse, v_take));
                    v_wanted := v_wanted - v_take;
                END IF;
                EXIT WHEN v_wanted = 0;
            END LOOP;
        END LOOP;
    END IF;

    IF v_refusal IS NOT NULL THEN
        -- Holds that ran out may be what stands in the way: the service sweeps and decides.
        PERFORM 1 FROM orders WHERE status = 'reserved' AND expires_at <= p_now LIMIT 1;
        IF FOUND THEN
            RETURN '{"outcome": "fallback"}'::jsonb;
        END IF;
        RETURN v_refusal;
    END IF;

    IF v_deduction = 'reserve' THEN
        v_expires := p_now + v_hold;
    END IF;
    INSERT INTO orders (order_id, buyer_id, deduction, status, created_at, updated_at, expires_at,
                        lines, allocations)
    VALUES (p_order_id, p_buyer_id, v_deduction,
            CASE WHEN v_deduction = 'payment' THEN 'placed' ELSE 'reserved' END,
            p_now, p_now, v_expires, p_lines::text,
            CASE WHEN v_deduction = 'payment' THEN '[]' ELSE v_alloc::text END);
    INSERT INTO order_lines (order_id, listing_id, buyer_id, quantity)
        SELECT p_order_id, value->>0, p_buyer_id, (value->>1)::bigint FROM jsonb_array_elements(p_lines);
    IF v_deduction = 'payment' THEN
        RETURN '{"outcome": "placed"}'::jsonb;  -- nothing is held until payment
    END IF;

    INSERT INTO movements (at, sku, warehouse, counter, delta, reason, order_id)
        SELECT p_now, a.value->>0, a.value->>1, 'reserved', (a.value->>2)::bigint, 'hold', p_order_id
        FROM jsonb_array_elements(v_alloc) WITH ORDINALITY AS a(value, n) ORDER BY a.n;
    UPDATE levels l SET reserved = l.reserved + x.units
        FROM (SELECT value->>0 AS sku, value->>1 AS warehouse, SUM((value->>2)::bigint) AS units
              FROM jsonb_array_elements(v_alloc) GROUP BY 1, 2) x
        WHERE l.sku = x.sku AND l.warehouse = x.warehouse;
    UPDATE listings SET sold = sold + x.units
        FROM (SELECT value->>0 AS listing_id, (value->>1)::bigint AS units
              FROM jsonb_array_elements(p_lines)) x
        WHERE listings.listing_id = x.listing_id;
    RETURN jsonb_build_object('outcome', 'reserved', 'expires_at', v_expires, 'allocations', v_alloc);
END;
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PLACE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS stockguard_place(text, text, jsonb, double precision)")
