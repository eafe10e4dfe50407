"""Presale against incoming shipments: the presold counter, listings' presale terms, orders'
source and expected date.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26

PostgreSQL's one-step placement leaves listings with presale terms to the
service, and its item events carry the new counter.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
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
               OR quota_period IS NOT NULL OR warehouse_choice IS NOT NULL OR presale IS NOT NULL);
    IF FOUND THEN
        RETURN '{"outcome": "fallback"}'::jsonb;  -- decided by the service's own code
    END IF;
    RETURN stockguard_place_plain(p_order_id, p_buyer_id, p_lines, p_now);
END;
$$;
"""

# As 0009's, in plpgsql: a SQL function called from plpgsql is planned again on every call
# (about a millisecond each, once per placed order), a plpgsql one keeps its plan per session.
LISTING_DATA = r"""
CREATE OR REPLACE FUNCTION stockguard_listing_data(p_listing text, p_at double precision) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
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
    );
END;
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
            'incoming', v_row.incoming, 'presold', v_row.presold,
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
    op.add_column("levels", sa.Column("presold", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("listings", sa.Column("presale", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("fulfil_from", sa.String(length=16), nullable=True))
    op.add_column("orders", sa.Column("expected_at", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GUARD)
        op.execute(LISTING_DATA)
        op.execute(EMIT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        before = _sibling("0009_quota_periods_warehouse_choice")
        op.execute(before.GUARD)
        op.execute(before.LISTING_DATA.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
        op.execute(before.EMIT)
    for table, column in [
        ("orders", "expected_at"),
        ("orders", "fulfil_from"),
        ("listings", "presale"),
        ("levels", "presold"),
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
