"""The event relay: publishes the outbox's change events to a broker, at least once, in order per stream."""

from stockguard.relay.brokers import Broker, BrokerUnavailable, NatsBroker, RabbitBroker, broker_for
from stockguard.relay.relay import Relay

__all__ = ["Broker", "BrokerUnavailable", "NatsBroker", "RabbitBroker", "Relay", "broker_for"]
