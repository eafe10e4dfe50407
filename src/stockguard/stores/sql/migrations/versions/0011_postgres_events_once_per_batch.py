"""PostgreSQL: a batch of one-step placements writes its change events once, at its end.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26

``stockguard_place_many`` decides a whole group of orders in one statement.
Writing the events after each order cost about a millisecond of the server's
time per order (a dozen statements); written once for the group, as the
service's own group commit does (``stores.outbox``), the item's and the
listing's streams get one event with their new values, and each order its own.
``stockguard_place`` (one order) still writes its events itself.
"""

from alembic import op

from stockguard.stores.sql.migrations.earlier import revision_module

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


SIGNATURE = "(text, text, jsonb, double precision)"

# The guard of 0010 over the core, without events.
QUIET = (
    revision_module("0010_presale")
    .GUARD.replace("CREATE OR REPLACE FUNCTION stockguard_place(", "CREATE FUNCTION stockguard_place_quiet(")
    .replace("stockguard_place_plain(", "stockguard_place_core(")
)

# p_placed: [[order_id, lines, outcome], ...]; the events of every order that was placed.
EMIT_PLACED = r"""
CREATE FUNCTION stockguard_emit_placed(p_placed jsonb, p_at double precision)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_item jsonb;
    v_levels jsonb := '[]'::jsonb;
    v_orders text[] := '{}';
    v_listings text[] := '{}';
BEGIN
    FOR v_item IN SELECT value FROM jsonb_array_elements(p_placed) LOOP
        IF v_item->2->>'outcome' IN ('reserved', 'placed') THEN
            v_orders := v_orders || (v_item->>0);
        END IF;
        IF v_item->2->>'outcome' = 'reserved' THEN
            v_levels := v_levels || (v_item->2->'allocations');
            v_listings := v_listings || ARRAY(SELECT value->>0 FROM jsonb_array_elements(v_item->1));
        END IF;
    END LOOP;
    IF cardinality(v_orders) > 0 THEN
        PERFORM stockguard_emit(v_levels, v_orders, ARRAY(SELECT DISTINCT unnest(v_listings)), p_at);
    END IF;
END;
$$;
"""

PLACE = r"""
CREATE OR REPLACE FUNCTION stockguard_place(
    p_order_id text, p_buyer_id text, p_lines jsonb, p_now double precision
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_outcome jsonb;
BEGIN
    v_outcome := stockguard_place_quiet(p_order_id, p_buyer_id, p_lines, p_now);
    PERFORM stockguard_emit_placed(
        jsonb_build_array(jsonb_build_array(p_order_id, p_lines, v_outcome)), p_now);
    RETURN v_outcome;
END;
$$;
"""

# 0010's, with every order's event written in one statement instead of a call per order.
ORDER_EVENTS = """
    -- Every order's event in two statements, however many orders (one placement or a group).
    WITH changed AS (
        SELECT 'order:' || o.order_id AS stream, jsonb_build_object(
            'order_id', o.order_id, 'buyer_id', o.buyer_id, 'status', o.status,
            'deduction', o.deduction,
            'lines', (SELECT jsonb_agg(jsonb_build_object('listing_id', x.value->>0,
                                                          'quantity', (x.value->>1)::bigint) ORDER BY x.n)
                      FROM jsonb_array_elements(o.lines::jsonb) WITH ORDINALITY AS x(value, n)),
            'expires_at', stockguard_iso(o.expires_at))::text AS data
        FROM orders o WHERE o.order_id = ANY(p_orders)
    ), moved AS (
        INSERT INTO event_streams (stream, seq, last)
            SELECT stream, 1, data FROM changed ORDER BY stream COLLATE "C"
            ON CONFLICT (stream) DO UPDATE SET seq = event_streams.seq + 1, last = excluded.last
            RETURNING stream, seq, last
    )
    INSERT INTO events (stream, seq, type, at, data, published)
        SELECT stream, seq, 'order.changed', p_at, last, false FROM moved ORDER BY stream COLLATE "C";
"""
_BEFORE = revision_module("0010_presale").EMIT
EMIT = (
    _BEFORE[: _BEFORE.index("    FOR v_row IN SELECT o.* FROM orders o")]
    + ORDER_EVENTS.lstrip("\n")
    + _BEFORE[_BEFORE.index("    FOR v_row IN SELECT x AS listing_id") :]
)


PLACE_MANY = r"""
CREATE OR REPLACE FUNCTION stockguard_place_many(p_orders jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_order jsonb;
    v_outcome jsonb;
    v_outcomes jsonb[] := '{}';
    v_placed jsonb := '[]'::jsonb;
    v_at double precision;
BEGIN
    -- Each element: [order_id, buyer_id, lines, now]
    FOR v_order IN SELECT value FROM jsonb_array_elements(p_orders) LOOP
        v_outcome := stockguard_place_quiet(
            v_order->>0, v_order->>1, v_order->2, (v_order->>3)::double precision);
        v_outcomes := v_outcomes || v_outcome;
        v_placed := v_placed || jsonb_build_array(jsonb_build_array(v_order->>0, v_order->2, v_outcome));
        v_at := GREATEST(v_at, (v_order->>3)::double precision);
    END LOOP;
    PERFORM stockguard_emit_placed(v_placed, v_at);
    RETURN to_jsonb(v_outcomes);
END;
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function in (EMIT, QUIET, EMIT_PLACED, PLACE, PLACE_MANY):
            op.execute(function)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        before = revision_module("0010_presale")
        op.execute(before.GUARD)
        op.execute(before.EMIT)
        op.execute(revision_module("0003_postgres_place_many").PLACE_MANY)
        op.execute("DROP FUNCTION stockguard_emit_placed(jsonb, double precision)")
        op.execute(f"DROP FUNCTION stockguard_place_quiet{SIGNATURE}")
