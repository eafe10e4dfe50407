"""PostgreSQL: decide many plain new orders in one statement.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

The writer of a process collects the holds waiting for it and used to run
each in a savepoint of its own: three round trips per hold, and a
subtransaction whose bookkeeping grows with the batch. ``stockguard_place``
never raises for a refusal, so a batch needs no savepoints between its orders:
this function runs it for every order of the batch, in the order given, and
answers a JSON array of outcomes. A batch that does raise (a racing insert of
the same order id by another process) is undone as a whole by the caller, who
then runs its orders one by one.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PLACE_MANY = r"""
CREATE OR REPLACE FUNCTION stockguard_place_many(p_orders jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_order jsonb;
    v_outcomes jsonb[] := '{}';
BEGIN
    -- Each element: [order_id, buyer_id, lines, now]
    FOR v_order IN SELECT value FROM jsonb_array_elements(p_orders) LOOP
        v_outcomes := v_outcomes || stockguard_place(
            v_order->>0, v_order->>1, v_order->2, (v_order->>3)::double precision);
    END LOOP;
    RETURN to_jsonb(v_outcomes);
END;
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PLACE_MANY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS stockguard_place_many(jsonb)")
