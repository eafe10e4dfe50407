"""Change events in an outbox, the components index, the relay's lease.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

The service writes events in Python at the end of each unit of work
(``stores.outbox``). PostgreSQL's one-step placement commits on the server,
so it writes its events there, with the same content and the same locks:
``stockguard_place_plain`` (0006) becomes ``stockguard_place_core`` behind a
wrapper that calls ``stockguard_emit`` for what the placement changed.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SIGNATURE = "(text, text, jsonb, double precision)"

ISO = r"""
CREATE FUNCTION stockguard_iso(p_at double precision) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(to_timestamp(p_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
"""

# As rules.sellable and events.listing_changed.
LISTING_DATA = r"""
CREATE FUNCTION stockguard_listing_data(p_listing text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'listing_id', l.listing_id,
        'sellable', GREATEST(0, LEAST(c.units, COALESCE(l.quota - l.sold, c.units))),
        'sold', l.sold,
        'quota', l.quota,
        'quota_left', CASE WHEN l.quota IS NULL THEN NULL ELSE GREATEST(0, l.quota - l.sold) END)
    FROM listings l, LATERAL (
        SELECT MIN(a.available::bigint / (comp.value->>1)::bigint) AS units
        FROM jsonb_array_elements(l.components::jsonb) comp, LATERAL (
            SELECT CASE WHEN COALESCE(bool_or(reserved + committed > 0
                                              AND on_hand - reserved - committed - safety < 0), false)
                        THEN 0
                        ELSE COALESCE(SUM(GREATEST(0, on_hand - reserved - committed - safety)), 0)
                   END AS available
            FROM levels WHERE sku = comp.value->>0) a) c
    WHERE l.listing_id = p_listing
$$;
"""

APPEND = r"""
CREATE FUNCTION stockguard_append(p_stream text, p_type text, p_data jsonb, p_at double precision)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    INSERT INTO event_streams (stream, seq, last) VALUES (p_stream, 1, p_data::text)
        ON CONFLICT (stream) DO UPDATE SET seq = event_streams.seq + 1, last = excluded.last
        RETURNING seq INTO v_seq;
    INSERT INTO events (stream, seq, type, at, data, published)
        VALUES (p_stream, v_seq, p_type, p_at, p_data::text, false);
END;
$$;
"""

# As stores.outbox.write_events: lock the streams, then item, order and listing events.
EMIT = r"""
CREATE FUNCTION stockguard_emit(
    p_levels jsonb, p_orders text[], p_listings text[], p_at double precision
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_listings text[];
    v_row record;
    v_data jsonb;
BEGIN
    v_listings := ARRAY(
        SELECT x FROM unnest(p_listings) x
        UNION SELECT lc.listing_id FROM listing_components lc
              WHERE lc.sku IN (SELECT value->>0 FROM jsonb_array_elements(p_levels)));
    PERFORM 1 FROM event_streams
        WHERE stream IN (SELECT 'item:' || (value->>0) FROM jsonb_array_elements(p_levels)
                         UNION SELECT 'order:' || x FROM unnest(p_orders) x
                         UNION SELECT 'listing:' || x FROM unnest(v_listings) x)
        ORDER BY stream COLLATE "C" FOR UPDATE;
    FOR v_row IN
        SELECT l.* FROM levels l
        WHERE (l.sku, l.warehouse) IN (SELECT value->>0, value->>1 FROM jsonb_array_elements(p_levels))
        ORDER BY l.sku COLLATE "C", l.warehouse COLLATE "C"
    LOOP
        PERFORM stockguard_append('item:' || v_row.sku, 'item.level_changed', jsonb_build_object(
            'sku', v_row.sku, 'warehouse', v_row.warehouse, 'on_hand', v_row.on_hand,
            'reserved', v_row.reserved, 'committed', v_row.committed, 'safety', v_row.safety,
            'incoming', v_row.incoming,
            'available', v_row.on_hand - v_row.reserved - v_row.committed - v_row.safety), p_at);
    END LOOP;
    FOR v_row IN SELECT o.* FROM orders o WHERE o.order_id = ANY(p_orders) ORDER BY o.order_id COLLATE "C"
    LOOP
        PERFORM stockguard_append('order:' || v_row.order_id, 'order.changed', jsonb_build_object(
            'order_id', v_row.order_id, 'buyer_id', v_row.buyer_id, 'status', v_row.status,
            'deduction', v_row.deduction,
            'lines', (SELECT jsonb_agg(jsonb_build_object('listing_id', x.value->>0,
                                                          'quantity', (x.value->>1)::bigint) ORDER BY x.n)
                      FROM jsonb_array_elements(v_row.lines::jsonb) WITH ORDINALITY AS x(value, n)),
            'expires_at', stockguard_iso(v_row.expires_at)), p_at);
    END LOOP;
    FOR v_row IN SELECT x AS listing_id FROM unnest(v_listings) x ORDER BY x COLLATE "C" LOOP
        v_data := stockguard_listing_data(v_row.listing_id);
        IF v_data IS NOT NULL AND v_data IS DISTINCT FROM
                (SELECT last::jsonb FROM event_streams WHERE stream = 'listing:' || v_row.listing_id) THEN
            PERFORM stockguard_append('listing:' || v_row.listing_id, 'listing.changed', v_data, p_at);
        END IF;
    END LOOP;
END;
$$;
"""

PLACE_PLAIN = r"""
CREATE FUNCTION stockguard_place_plain(
    p_order_id text, p_buyer_id text, p_lines jsonb, p_now double precision
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_outcome jsonb;
BEGIN
    v_outcome := stockguard_place_core(p_order_id, p_buyer_id, p_lines, p_now);
    IF v_outcome->>'outcome' = 'reserved' THEN
        PERFORM stockguard_emit(v_outcome->'allocations', ARRAY[p_order_id],
                                ARRAY(SELECT value->>0 FROM jsonb_array_elements(p_lines)), p_now);
    ELSIF v_outcome->>'outcome' = 'placed' THEN
        PERFORM stockguard_emit('[]'::jsonb, ARRAY[p_order_id], ARRAY[]::text[], p_now);
    END IF;
    RETURN v_outcome;
END;
$$;
"""


def upgrade() -> None:
    op.create_table(
        "listing_components",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("listing_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sku", "listing_id"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stream", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_events_stream_seq", "events", ["stream", "seq"], unique=True)
    op.create_index("ix_events_published", "events", ["published", "id"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "event_streams",
        sa.Column("stream", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("last", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("stream"),
    )
    op.create_table(
        "relay_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT listing_id, components FROM listings")).fetchall()
    pairs = [{"sku": sku, "listing_id": lid} for lid, comps in rows for sku, _ in json.loads(comps)]
    if pairs:
        bind.execute(
            sa.text("INSERT INTO listing_components (sku, listing_id) VALUES (:sku, :listing_id)"), pairs
        )
    # Streams exist from the start, so their rows can be locked before a first event.
    new_stream = (
        "INSERT INTO event_streams (stream, seq, last) SELECT DISTINCT {name}, 0, '{{}}' FROM {table}"
    )
    bind.execute(sa.text(new_stream.format(name="'listing:' || listing_id", table="listings")))
    bind.execute(sa.text(new_stream.format(name="'item:' || sku", table="levels")))
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION stockguard_place_plain{SIGNATURE} RENAME TO stockguard_place_core")
        for function in (ISO, LISTING_DATA, APPEND, EMIT, PLACE_PLAIN):
            op.execute(function)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION stockguard_place_plain{SIGNATURE}")
        op.execute(f"ALTER FUNCTION stockguard_place_core{SIGNATURE} RENAME TO stockguard_place_plain")
        op.execute("DROP FUNCTION stockguard_emit(jsonb, text[], text[], double precision)")
        op.execute("DROP FUNCTION stockguard_append(text, text, jsonb, double precision)")
        op.execute("DROP FUNCTION stockguard_listing_data(text)")
        op.execute("DROP FUNCTION stockguard_iso(double precision)")
    op.drop_table("relay_leases")
    op.drop_table("event_streams")
    op.drop_table("events")
    op.drop_table("listing_components")
