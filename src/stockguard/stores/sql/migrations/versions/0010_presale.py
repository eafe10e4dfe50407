"""Presale against incoming shipments: the presold counter, listings' presale terms, orders'
source and expected date.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26

PostgreSQL's one-step placement leaves listings with presale terms to the
service, and its item events carry the new counter.
"""

import sqlalchemy as sa
from alembic import op

from stockguard.stores.sql.migrations.earlier import revision_module

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

# 0009's, with the new counter in the item's events.
EMIT = revision_module("0009_quota_periods_warehouse_choice").EMIT.replace(
    "'incoming', v_row.incoming,", "'incoming', v_row.incoming, 'presold', v_row.presold,"
)


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
        before = revision_module("0009_quota_periods_warehouse_choice")
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
