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

import sqlalchemy as sa
from alembic import op

from stockguard.stores.sql.migrations.earlier import revision_module

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

# 0007's, calling the listing's data with the time its quota period is taken at.
EMIT = (
    revision_module("0007_change_events_outbox")
    .EMIT.replace("CREATE FUNCTION stockguard_emit(", "CREATE OR REPLACE FUNCTION stockguard_emit(")
    .replace("stockguard_listing_data(v_row.listing_id);", "stockguard_listing_data(v_row.listing_id, p_at);")
)


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
        before = revision_module("0007_change_events_outbox")
        guard = revision_module("0006_buyers_screening_draws").GUARD
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
