"""Buyer profiles and verdicts, screening and device/address limits on listings, order context, draws.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

PostgreSQL's one-step placement (0002) knows nothing of screening or of
device and address limits: ``stockguard_place`` becomes a guard that answers
``fallback`` for an order on such a listing (the service then decides with
every rule) and hands every other order to the unchanged function, renamed
``stockguard_place_plain``. Orders that carry a device, an IP or an address
never reach it: the service keeps them off the one-step path.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

GUARD = r"""
CREATE FUNCTION stockguard_place(
    p_order_id text, p_buyer_id text, p_lines jsonb, p_now double precision
) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM listings
        WHERE listing_id IN (SELECT value->>0 FROM jsonb_array_elements(p_lines))
          AND (screening IS NOT NULL OR per_device_limit IS NOT NULL OR per_address_limit IS NOT NULL);
    IF FOUND THEN
        RETURN '{"outcome": "fallback"}'::jsonb;  -- screened or limited beyond the buyer
    END IF;
    RETURN stockguard_place_plain(p_order_id, p_buyer_id, p_lines, p_now);
END;
$$;
"""
SIGNATURE = "(text, text, jsonb, double precision)"


def upgrade() -> None:
    op.add_column("listings", sa.Column("screening", sa.Text(), nullable=True))
    op.add_column("listings", sa.Column("per_device_limit", sa.BigInteger(), nullable=True))
    op.add_column("listings", sa.Column("per_address_limit", sa.BigInteger(), nullable=True))
    op.add_column("orders", sa.Column("device_id", sa.String(length=64), nullable=True))
    op.add_column("orders", sa.Column("ip", sa.String(length=45), nullable=True))
    op.add_column("orders", sa.Column("address_hash", sa.String(length=64), nullable=True))
    op.add_column("order_lines", sa.Column("device_id", sa.String(length=64), nullable=True))
    op.add_column("order_lines", sa.Column("address_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_order_lines_device_listing", "order_lines", ["device_id", "listing_id"])
    op.create_index("ix_order_lines_address_listing", "order_lines", ["address_hash", "listing_id"])
    op.create_table(
        "buyers",
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.Column("paid_orders", sa.BigInteger(), nullable=False),
        sa.Column("active_days_90d", sa.Integer(), nullable=False),
        sa.Column("member_since", sa.Float(), nullable=True),
        sa.Column("last_active_at", sa.Float(), nullable=True),
        sa.Column("phone_verified", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("buyer_id"),
    )
    op.create_table(
        "buyer_overrides",
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("buyer_id"),
    )
    op.create_table(
        "draws",
        sa.Column("draw_id", sa.String(length=64), nullable=False),
        sa.Column("listing_id", sa.String(length=64), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("opens_at", sa.Float(), nullable=False),
        sa.Column("closes_at", sa.Float(), nullable=False),
        sa.Column("payment_seconds", sa.Integer(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("drawn_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("draw_id"),
    )
    op.create_table(
        "draw_entries",
        sa.Column("draw_id", sa.String(length=64), nullable=False),
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("entered_at", sa.Float(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("address_hash", sa.String(length=64), nullable=True),
        sa.Column("rank", sa.BigInteger(), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("passed_over", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("draw_id", "buyer_id"),
    )
    op.create_index("ux_draw_entries_number", "draw_entries", ["draw_id", "number"], unique=True)
    op.create_index("ux_draw_entries_device", "draw_entries", ["draw_id", "device_id"], unique=True)
    op.create_index("ux_draw_entries_address", "draw_entries", ["draw_id", "address_hash"], unique=True)
    op.create_index("ix_draw_entries_order", "draw_entries", ["order_id"])
    op.create_index("ix_draw_entries_rank", "draw_entries", ["draw_id", "rank"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION stockguard_place{SIGNATURE} RENAME TO stockguard_place_plain")
        op.execute(GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION stockguard_place{SIGNATURE}")
        op.execute(f"ALTER FUNCTION stockguard_place_plain{SIGNATURE} RENAME TO stockguard_place")
    op.drop_table("draw_entries")
    op.drop_table("draws")
    op.drop_table("buyer_overrides")
    op.drop_table("buyers")
    op.drop_index("ix_order_lines_address_listing", table_name="order_lines")
    op.drop_index("ix_order_lines_device_listing", table_name="order_lines")
    for table, column in [
        ("order_lines", "address_hash"),
        ("order_lines", "device_id"),
        ("orders", "address_hash"),
        ("orders", "ip"),
        ("orders", "device_id"),
        ("listings", "per_address_limit"),
        ("listings", "per_device_limit"),
        ("listings", "screening"),
    ]:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
