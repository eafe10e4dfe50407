"""Quotas that start again every period; which warehouse a listing allocates from first; orders naming
warehouses.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

PostgreSQL's one-step placement knows neither: its guard now answers
``fallback`` for listings with a quota period or a warehouse choice other
than priority (orders naming warehouses carry context, which never reaches
it). A listing's event data counts this period's units against its quota.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

GUARD = r"""
CREATE OR REPLACE FUNCTION stockguard_place(
    p_order_id text, p_buyer_id text, p_lines jsonb, p_now double precision
) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM listings
        WHERE listing_id IN (SELECT value->>0 FROM jsonb_array_elements(p_lines))
          AND (screening IS NOT NULL OR per_device_limit IS NOT NULL OR per_address_limit IS NOT NULL
               OR quota_period IS NOT NULL OR warehouse_choice IS NOT NULL);
    IF FOUND THEN
        RETURN '{"outcome": "fallback"}'::jsonb;  -- decided by the service's own code
    END IF;
    RETURN stockguard_place_plain(p_order_id, p_buyer_id, p_lines, p_now);
END;
$$;
"""

# As rules.sellable, stores.base.quota_used and events.listing_changed.
LISTING_DATA = r"""
CREATE FUNCTION stockguard_listing_data(p_listing text, p_at double precision) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'listing_id', l.listing_id,
        'sellable', GREATEST(0, LEAST(c.units, COALESCE(l.quota - u.used, c.units))),
        'sold', l.sold,
        'quota', l.quota,
        'quota_left', CASE WHEN l.quota IS NULL THEN NULL ELSE GREATEST(0, l.quota - u.used) END)
    FROM listings l, LATERAL (
        SELECT MIN(a.available::bigint / (comp.value->>1)::bigint) AS units
        FROM jsonb_array_elements(l.components::jsonb) comp, LATERAL (
            SELECT CASE WHEN COALESCE(bool_or(reserved + committed > 0
                                              AND on_hand - reserved - committed - safety < 0), false)
                        THEN 0
                        ELSE COALESCE(SUM(GREATEST(0, on_hand - reserved - committed - safety)), 0)
                   END AS available
            FROM levels WHERE sku = comp.value->>0) a) c,
    LATERAL (
        SELECT CASE WHEN l.quota_period IS NULL THEN l.sold
                    ELSE COALESCE((SELECT q.units FROM quota_usage q
                                   WHERE q.listing_id = l.listing_id
                                     AND q.period_start = extract(epoch FROM date_trunc(
                                         l.quota_period, to_timestamp(p_at) AT TIME ZONE 'UTC')
                                         AT TIME ZONE 'UTC')), 0)
               END AS used) u
    WHERE l.listing_id = p_listing
$$;
"""

EMIT = r"""
CREATE OR REPLACE FUNCTION stockguard_emit(
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
        v_data := stockguard_listing_data(v_row.listing_id, p_at);
        IF v_data IS NOT NULL AND v_data IS DISTINCT FROM
                (SELECT last::jsonb FROM event_streams WHERE stream = 'listing:' || v_row.listing_id) THEN
            PERFORM stockguard_append('listing:' || v_row.listing_id, 'listing.changed', v_data, p_at);
        END IF;
    END LOOP;
END;
$$;
"""


def upgrade() -> None:
    op.add_column("listings", sa.Column("quota_period", sa.String(length=8), nullable=True))
    op.add_column("listings", sa.Column("warehouse_choice", sa.String(length=16), nullable=True))
    op.add_column("orders", sa.Column("warehouses", sa.Text(), nullable=True))
    op.create_table(
        "quota_usage",
        sa.Column("listing_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Float(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("listing_id", "period_start"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION stockguard_listing_data(text)")
        for function in (GUARD, LISTING_DATA, EMIT):
            op.execute(function)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        before = _sibling("0007_change_events_outbox")
        guard = _sibling("0006_buyers_screening_draws").GUARD
        op.execute("DROP FUNCTION stockguard_listing_data(text, double precision)")
        op.execute(before.LISTING_DATA)
        op.execute(before.EMIT.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
        op.execute(guard.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.drop_table("quota_usage")
    for table, column in [
        ("orders", "warehouses"),
        ("listings", "warehouse_choice"),
        ("listings", "quota_period"),
    ]:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)


def _sibling(name: str) -> ModuleType:
    """An earlier revision's module, for the text of the functions it created."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
