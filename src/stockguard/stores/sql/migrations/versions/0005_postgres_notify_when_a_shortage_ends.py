"""PostgreSQL: notify also when a level's shortage ends.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

A shortage on one level (promised more than it holds) stops the whole
item's sales (``rules.item_available``). Shipping from that level can end
the shortage without its free units growing (on_hand and committed go down
together), and the item's other levels are sellable again: the trigger of
0004 missed that, and other processes kept refusing from a sold-out proof.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FREE = "{row}.on_hand - {row}.reserved - {row}.committed - {row}.safety"
SHORT = f"({{row}}.reserved + {{row}}.committed > 0 AND {FREE} < 0)"

STOCK_MAY_BE_BACK = f"""
CREATE TRIGGER levels_stock_may_be_back AFTER UPDATE ON levels FOR EACH ROW
WHEN ({FREE.format(row="NEW")} > {FREE.format(row="OLD")}
      OR ({SHORT.format(row="OLD")} AND NOT {SHORT.format(row="NEW")}))
EXECUTE FUNCTION stockguard_stock_may_be_back()
"""

FREE_UNITS_GREW = f"""
CREATE TRIGGER levels_free_units_grew AFTER UPDATE ON levels FOR EACH ROW
WHEN ({FREE.format(row="NEW")} > {FREE.format(row="OLD")})
EXECUTE FUNCTION stockguard_stock_may_be_back()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS levels_free_units_grew ON levels")
        op.execute(STOCK_MAY_BE_BACK)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS levels_stock_may_be_back ON levels")
        op.execute(FREE_UNITS_GREW)
