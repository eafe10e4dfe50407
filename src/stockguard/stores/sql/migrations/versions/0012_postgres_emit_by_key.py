"""PostgreSQL: a batch's change events look their orders and streams up by key, however small
the tables were when the plan was made.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27

``stockguard_emit`` reads the batch's orders (``order_id = ANY(...)``) and
locks the items' and listings' streams (``stream IN (...)``). PL/pgSQL keeps a
statement's plan for the session, and a plan made while ``orders`` and
``event_streams`` were small (a new store, the first orders of its first
sale, before autovacuum analyses them) scans them whole: each batch then read
every order placed so far, and a sale slowed down as it sold (one connection,
batches of 64: 4,154 holds/s over the first 3,200 orders, 1,938 once 16,000
existed). Every lookup there has its index, so the function plans without
sequential scans: 4,619 and 3,987 holds/s.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

EMIT = "stockguard_emit(jsonb, text[], text[], double precision)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {EMIT} SET enable_seqscan = off")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {EMIT} RESET enable_seqscan")
