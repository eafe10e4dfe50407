"""The Redis flash-sale gate: admission decided in Redis, in front of the SQL store."""

from stockguard.gate.redis_gate import AdmitRequest, RedisGate

__all__ = ["AdmitRequest", "RedisGate"]
