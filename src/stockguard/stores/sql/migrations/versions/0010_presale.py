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


# 0009's guard, leaving listings that sell ahead to the service too.
GUARD = revision_module("0009_quota_periods_warehouse_choice").GUARD.replace(
    "OR quota_period IS NOT NULL OR warehouse_choice IS NOT NULL);",
    "OR quota_period IS NOT NULL OR warehouse_choice IS NOT NULL OR presale IS NOT NULL);",
)

# As 0009's, in plpgsql: a SQL function called from plpgsql is planned again on every call
# (about a millisecond each, once per placed order), a plpgsql one keeps its plan per session.
_SQL_BODY = revision_module("0009_quota_periods_warehouse_choice").LISTING_DATA
_QUERY = _SQL_BODY[_SQL_BODY.index("    SELECT jsonb_build_object(") : _SQL_BODY.index("\n$$;")]
LISTING_DATA = (
    "\nCREATE OR REPLACE FUNCTION stockguard_listing_data(p_listing text, p_at double precision) "
    "RETURNS jsonb\n"
    "LANGUAGE plpgsql STABLE AS $$\nBEGIN\n    RETURN (\n"
    + "\n".join("    " + line if line else line for line in _QUERY.splitlines())
    + "\n    );\nEND;\n$$;\n"
)

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
