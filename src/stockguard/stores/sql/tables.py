"""The relational schema, shared by SQLite and PostgreSQL (migrations in ``migrations/``).

Times are stored as float seconds since the epoch (UTC): exact to the
microsecond, compared cheaply, and identical on both databases.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = String(64)

warehouses = Table(
    "warehouses",
    metadata,
    Column("name", ID, primary_key=True),
    Column("priority", Integer, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("safety", BigInteger, nullable=False),
)

levels = Table(
    "levels",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("warehouse", ID, primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("committed", BigInteger, nullable=False),
    Column("safety", BigInteger, nullable=False),
    Column("incoming", BigInteger, nullable=False),
    Column("presold", BigInteger, nullable=False),  # units of incoming shipments sold ahead
)

listings = Table(
    "listings",
    metadata,
    Column("listing_id", ID, primary_key=True),
    Column("title", String(200), nullable=False),
    # [[sku, quantity], ...]: always read whole with the listing, never searched.
    Column("components", Text, nullable=False),
    Column("deduction", String(16), nullable=False),
    Column("hold_seconds", Integer, nullable=False),
    Column("per_buyer_limit", BigInteger),
    Column("quota", BigInteger),
    Column("screening", Text),  # the Screening as a JSON object; NULL: anyone may buy
    Column("per_device_limit", BigInteger),
    Column("per_address_limit", BigInteger),
    Column("quota_period", String(8)),  # day, week, month, year; NULL: the quota is for all time
    Column("warehouse_choice", String(16)),  # NULL: priority
    Column("presale", Text),  # {"arrives_by", "share_percent"}; NULL: no presale
    # Units in orders holding or having taken stock; kept in the same
    # transaction as the orders and verified against them by `check`.
    Column("sold", BigInteger, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", ID, primary_key=True),
    Column("buyer_id", ID, nullable=False),
    Column("deduction", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("lines", Text, nullable=False),  # [[listing_id, quantity], ...]
    Column("allocations", Text, nullable=False),  # [[sku, warehouse, quantity], ...]
    Column("device_id", ID),
    Column("ip", String(45)),
    Column("address_hash", String(64)),  # HMAC-SHA-256 of the delivery address; never the address
    Column("warehouses", Text),  # the warehouses the order named, a JSON list; NULL: none
    Column("fulfil_from", String(16)),  # "incoming" for presale orders; NULL: stock
    Column("expected_at", Float),  # when a presale order's goods are expected
    Index("ix_orders_status_expires", "status", "expires_at"),
)

# One row per order line, so per-buyer limits are one indexed query.
order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", ID, primary_key=True),
    Column("listing_id", ID, primary_key=True),
    Column("buyer_id", ID, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    # Copied from the order, so device and address limits are indexed queries too.
    Column("device_id", ID),
    Column("address_hash", String(64)),
    Index("ix_order_lines_buyer_listing", "buyer_id", "listing_id"),
    Index("ix_order_lines_device_listing", "device_id", "listing_id"),
    Index("ix_order_lines_address_listing", "address_hash", "listing_id"),
)

movements = Table(
    "movements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("sku", ID, nullable=False),
    Column("warehouse", ID, nullable=False),
    Column("counter", String(16), nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("reason", String(16), nullable=False),
    Column("order_id", ID),
    Column("reference", String(200)),
    Index("ix_movements_order", "order_id"),
    Index("ix_movements_sku", "sku"),
)

shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", ID, primary_key=True),
    Column("sku", ID, nullable=False),
    Column("warehouse", ID, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("expected_at", Float, nullable=False),
    Column("received", BigInteger),
)

buyers = Table(
    "buyers",
    metadata,
    Column("buyer_id", ID, primary_key=True),
    Column("registered_at", Float, nullable=False),
    Column("paid_orders", BigInteger, nullable=False),
    Column("active_days_90d", Integer, nullable=False),
    Column("member_since", Float),
    Column("last_active_at", Float),
    Column("phone_verified", Boolean, nullable=False),
)

buyer_overrides = Table(
    "buyer_overrides",
    metadata,
    Column("buyer_id", ID, primary_key=True),
    Column("verdict", String(8), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("at", Float, nullable=False),
)

draws = Table(
    "draws",
    metadata,
    Column("draw_id", ID, primary_key=True),
    Column("listing_id", ID, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("opens_at", Float, nullable=False),
    Column("closes_at", Float, nullable=False),
    Column("payment_seconds", Integer, nullable=False),
    Column("seed", String(64), nullable=False),  # secret until drawn_at; never served before
    Column("commitment", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("drawn_at", Float),
)

draw_entries = Table(
    "draw_entries",
    metadata,
    Column("draw_id", ID, primary_key=True),
    Column("buyer_id", ID, primary_key=True),
    Column("number", BigInteger, nullable=False),
    Column("entered_at", Float, nullable=False),
    Column("device_id", ID),
    Column("address_hash", String(64)),
    Column("rank", BigInteger),
    Column("order_id", ID),
    Column("passed_over", String(200)),
    # One entry per device and per address in each draw, kept by the database too.
    Index("ux_draw_entries_number", "draw_id", "number", unique=True),
    Index("ux_draw_entries_device", "draw_id", "device_id", unique=True),
    Index("ux_draw_entries_address", "draw_id", "address_hash", unique=True),
    Index("ix_draw_entries_order", "order_id"),
    Index("ix_draw_entries_rank", "draw_id", "rank"),
)

# Which listings sell which item: a change of the item's stock changes their sellable quantity.
listing_components = Table(
    "listing_components",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("listing_id", ID, primary_key=True),
)

# The outbox: one row per change event, written in the transaction of the change.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(80), nullable=False),  # "listing:<id>", "order:<id>", "item:<sku>"
    Column("seq", BigInteger, nullable=False),  # 1, 2, 3... per stream, in commit order
    Column("type", String(40), nullable=False),
    Column("at", Float, nullable=False),
    Column("data", Text, nullable=False),  # the new values, a JSON object
    Column("published", Boolean, nullable=False),  # a relay's broker acknowledged it
    Index("ux_events_stream_seq", "stream", "seq", unique=True),
    Index("ix_events_published", "published", "id"),
    Index("ix_events_at", "at"),
)

# Each stream's last sequence number and last data. Its row is locked while an
# event is added, so one stream's events are numbered in the order they commit.
event_streams = Table(
    "event_streams",
    metadata,
    Column("stream", String(80), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("last", Text, nullable=False),
)

# Which relay process may publish now (one at a time, so streams stay in order).
relay_leases = Table(
    "relay_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("until", Float, nullable=False),
)

# The last count a warehouse system sent for each item and warehouse (POST /v1/warehouse-sync).
applied_counts = Table(
    "applied_counts",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("warehouse", ID, primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("as_of", Float, nullable=False),
    Column("counted", BigInteger, nullable=False),
    Column("applied_at", Float, nullable=False),
)

# Units of quota used per listing and period, for quotas that start again (listings.quota_period).
quota_usage = Table(
    "quota_usage",
    metadata,
    Column("listing_id", ID, primary_key=True),
    Column("period_start", Float, primary_key=True),
    Column("units", BigInteger, nullable=False),
)
