"""PostgreSQL: notify listeners when stock may have become sellable again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

A process that proved a listing sold out refuses its buyers from memory until
something could have changed that (``stockguard.service.sold_out``). These
triggers tell every process when: a level's free units grow (a cancellation,
an expiry, a delivery, a count, a lower safety stock), a level is added or
removed, or a listing changes in any way but a sale. Holds, the hot path, only
shrink free units and notify nobody. ``NOTIFY`` is delivered at commit and
once per transaction, however many rows fired it.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHANNEL = "stockguard_stock"

STATEMENTS = [
    f"""
    CREATE OR REPLACE FUNCTION stockguard_stock_may_be_back() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', '');
        RETURN NULL;
    END;
    $$
    """,
    """
    CREATE TRIGGER levels_free_units_grew AFTER UPDATE ON levels FOR EACH ROW
    WHEN (NEW.on_hand - NEW.reserved - NEW.committed - NEW.safety
          > OLD.on_hand - OLD.reserved - OLD.committed - OLD.safety)
    EXECUTE FUNCTION stockguard_stock_may_be_back()
    """,
    """
    CREATE TRIGGER levels_added_or_removed AFTER INSERT OR DELETE ON levels FOR EACH STATEMENT
    EXECUTE FUNCTION stockguard_stock_may_be_back()
    """,
    """
    CREATE TRIGGER listings_changed_not_by_a_sale AFTER UPDATE ON listings FOR EACH ROW
    WHEN (NEW.sold <= OLD.sold)
    EXECUTE FUNCTION stockguard_stock_may_be_back()
    """,
    """
    CREATE TRIGGER listings_added_or_removed AFTER INSERT OR DELETE ON listings FOR EACH STATEMENT
    EXECUTE FUNCTION stockguard_stock_may_be_back()
    """,
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in STATEMENTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in [
            ("levels_free_units_grew", "levels"),
            ("levels_added_or_removed", "levels"),
            ("listings_changed_not_by_a_sale", "listings"),
            ("listings_added_or_removed", "listings"),
        ]:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS stockguard_stock_may_be_back()")
