"""PostgreSQL: a batch's change events look their orders and streams up by key, however small
the tables were when the plan was made.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27

``stockguard_emit`` reads the batch's orders (``order_id = ANY(...)``) and
locks the streams it appends to (``stream IN (SELECT ...)``). PL/pgSQL keeps
a statement's plan for the session, and plans made while ``orders`` and
``event_streams`` were small (a new store, the first orders of its first sale,
before autovacuum analyses them) read those tables whole: a sequential scan of
the orders, a hash join over every stream. Each batch then read every order
placed before it, and a sale slowed down as it sold (``bench/pg_growth.py``,
batches of 64: 4,118 holds/s over the first 3,200 orders, 1,943 once 16,000
existed).

Now the streams are locked by an index condition on the array of their names
(``stream = ANY(ARRAY(...))``, as the orders are read), and the function is
planned with sequential scans turned off (``SET`` in its definition, so a
later revision derived from this text keeps it). That makes a whole scan
costly to the planner, not impossible: ``tests/integration/test_postgres_plans.py``
reads the plans the server runs and fails on any node that reads more than a
batch's own rows. With both: 4,514 holds/s over the first 3,200 orders, 4,668
once 16,000 existed. Autovacuum's first analysis of the tables would also have
mended the old plans, but a new store's first sale is over long before it runs.
"""

from alembic import op

from stockguard.stores.sql.migrations.earlier import revision_module

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_LOCK_BEFORE = """    PERFORM 1 FROM event_streams
        WHERE stream IN (SELECT 'item:' || (value->>0) FROM jsonb_array_elements(p_levels)
                         UNION SELECT 'order:' || x FROM unnest(p_orders) x
                         UNION SELECT 'listing:' || x FROM unnest(v_listings) x)
        ORDER BY stream COLLATE "C" FOR UPDATE;"""
_LOCK_BY_KEY = """    PERFORM 1 FROM event_streams
        WHERE stream = ANY(ARRAY(SELECT 'item:' || (value->>0) FROM jsonb_array_elements(p_levels)
                                 UNION SELECT 'order:' || x FROM unnest(p_orders) x
                                 UNION SELECT 'listing:' || x FROM unnest(v_listings) x))
        ORDER BY stream COLLATE "C" FOR UPDATE;"""

_HEADER = ") RETURNS void LANGUAGE plpgsql AS $$"
_BEFORE = revision_module("0011_postgres_events_once_per_batch").EMIT
if _LOCK_BEFORE not in _BEFORE or _HEADER not in _BEFORE:
    raise RuntimeError("0011's stockguard_emit no longer holds the text revision 0012 replaces")
EMIT = _BEFORE.replace(_LOCK_BEFORE, _LOCK_BY_KEY).replace(
    _HEADER, ") RETURNS void LANGUAGE plpgsql SET enable_seqscan = off AS $$"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EMIT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_BEFORE)  # CREATE OR REPLACE drops the function's SET as well
