"""Rate limits on order placement: per buyer and per IP address, in memory or shared in Redis.

The store's own rules (stock, listing limits) say how much a buyer may buy;
they do not stop one buyer, or one address running a script for many buyer
ids, from hammering the order endpoint during a sale. :class:`RateLimits`
caps how many orders each buyer and each IP address may *place* per window,
before the order reaches the gate or the store, using the :pypi:`limits`
library.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.parse
from dataclasses import dataclass

import limits
import limits.errors
import redis.exceptions
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from stockguard.domain.errors import InvalidInput, RateLimited

log = logging.getLogger("stockguard.rate_limits")

# A limiter that cannot count must not hold orders up: short timeouts and one
# retry (not redis-py's default of ten with backoff, seconds per order while Redis is down).
_REDIS_TIMEOUT_S = 0.5
# After a storage error, orders go through without asking the storage for this long,
# so an outage does not cost every order a connection attempt.
_SKIP_AFTER_FAILURE_S = 1.0
# At most one warning per this many seconds while the storage keeps failing.
_WARN_EVERY_S = 10.0

# What a Redis (or Redis Cluster) storage raises when it cannot answer. The storages are
# built with wrap_exceptions=True, so most errors arrive as StorageError; a cluster that
# cannot be reached raises RedisClusterException, which is not a RedisError.
_STORAGE_ERRORS = (
    limits.errors.StorageError,
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
)

_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")
_CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True, slots=True)
class _Limit:
    kind: str  # "buyer" or "ip": the first part of the key, so a buyer id never counts as an IP
    item: limits.RateLimitItem


class RateLimits:
    """How many orders one buyer and one IP address may place per window.

    Why: a flash sale draws scripts that place orders as fast as they can, and
    one client on one address can cycle through many buyer ids. A limit per
    buyer stops the first, a limit per IP address the second. Both are counted
    before the order touches the gate or the store, so a refused order costs
    one or two Redis round trips and nothing else.

    ``per_buyer`` and ``per_ip`` are :pypi:`limits` strings: ``"5/second"``,
    ``"20 per minute"``, or several at once (``"5/second; 100/hour"``); None
    turns that limit off. With both None, :attr:`enabled` is False and the
    caller skips :meth:`check` entirely.

    Where the counts live:

    * ``storage_url=None`` (or ``"memory://"``): in this process only; each
      ``RateLimits`` counts on its own.
    * ``"redis://host:port/db"`` (``rediss://`` for TLS): one Redis shared by
      every process, so the limit holds for the whole fleet. Keys start with
      ``prefix + ":"``; give each store (each deployment) sharing a Redis its own
      prefix.
    * a Redis Cluster: the URL of any node with ``cluster=True`` (or a
      ``redis+cluster://host:port[,host:port...]`` URL). The other nodes are
      found from it.

    When the storage cannot be reached (Redis down, cluster failing over), the
    limiter **fails open**: the order goes through uncounted, because a limiter
    that cannot count is a smaller problem than a shop that sells nothing.
    A warning goes to the ``stockguard.rate_limits`` logger at most once per
    10 s while this lasts (the URL without its password), and the storage is
    not asked again for a second after each failure, so an outage adds no
    latency to orders.
    """

    def __init__(
        self,
        per_buyer: str | None,
        per_ip: str | None,
        storage_url: str | None = None,
        prefix: str = "sg",
        *,
        cluster: bool = False,
    ) -> None:
        self._buyer_limits = [_Limit("buyer", item) for item in _parse("per_buyer", per_buyer)]
        self._ip_limits = [_Limit("ip", item) for item in _parse("per_ip", per_ip)]
        if not prefix:
            raise InvalidInput("the rate limit key prefix must not be empty")
        self._storage_url, self._options = _storage_target(storage_url, cluster)
        self._prefix = prefix
        self._shown_url = _without_password(self._storage_url)
        self._open_lock = threading.Lock()  # one thread at a time tries to open a failed storage
        self._warn_lock = threading.Lock()
        self._limiter: MovingWindowRateLimiter | None = None
        self._skip_until = 0.0  # time.monotonic() before which the storage is not asked
        self._warned_at: float | None = None
        self._let_through = 0  # orders let through uncounted since the last warning
        if self.enabled:
            self._limiter = self._open()

    @property
    def enabled(self) -> bool:
        """False when neither limit is set: then there is nothing to check."""
        return bool(self._buyer_limits or self._ip_limits)

    @property
    def storage(self) -> str:
        """Where the counts live, without any password (for logs and diagnostics)."""
        return self._shown_url

    def check(self, buyer_id: str, ip: str | None) -> None:
        """Count one order by ``buyer_id`` from ``ip``, or raise :class:`RateLimited`.

        The order is counted against every limit of the buyer and, when ``ip``
        is given, of the IP address. A refused order is counted nowhere (but see
        the race below). When the storage fails, the order is let through.
        """
        wanted = [(limit, buyer_id) for limit in self._buyer_limits]
        if ip is not None:
            wanted += [(limit, ip) for limit in self._ip_limits]
        if not wanted:
            return
        limiter = self._limiter_now()
        if limiter is None:
            self._count_let_through()
            return
        try:
            # The moving window records a hit only when it is allowed, but no store
            # takes hits on several keys at once. So: look at every limit but the
            # first without counting (get_window_stats), refusing on the first one
            # that is full; then hit them all in order. A refused first hit is its own
            # test and touches nothing else. Only a race, another process filling a
            # later limit between its look and its hit, spends the earlier limits'
            # budget on an order that is refused: the library cannot take a hit back.
            for limit, who in wanted[1:]:
                stats = limiter.get_window_stats(limit.item, limit.kind, who)
                if stats.remaining < 1:
                    raise _refusal(limit, who, stats.reset_time)
            for limit, who in wanted:
                if not limiter.hit(limit.item, limit.kind, who):
                    reset_time = limiter.get_window_stats(limit.item, limit.kind, who).reset_time
                    raise _refusal(limit, who, reset_time)
        except _STORAGE_ERRORS as error:
            self._failed(error)

    def close(self) -> None:
        """Close the connections to Redis (nothing to do in memory); a later check opens new ones."""
        limiter = self._limiter
        if limiter is not None and not isinstance(limiter.storage, MemoryStorage):
            # RedisStorage and RedisClusterStorage keep their redis-py client in
            # .storage; limits types it loosely (Any) and offers no close() of its own.
            limiter.storage.storage.close()  # type: ignore[attr-defined]

    def __enter__(self) -> RateLimits:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- storage -------------------------------------------------------------------

    def _open(self) -> MovingWindowRateLimiter | None:
        """The limiter on a new storage, or None (logged) when the storage cannot be reached.

        Only a Redis Cluster connects here (to learn its nodes); a single Redis
        connects on the first command.
        """
        try:
            storage = self._new_storage()
        except _STORAGE_ERRORS as error:
            self._failed(error, orders=0)
            return None
        # Moving window, not sliding window counter: it is exact. A buyer gets N
        # orders in *any* window of the limit's length, with no burst at window edges
        # and no estimate weighted by the previous window (which may refuse an order
        # that is within the limit, or allow one that is not); and its Retry-After is
        # exact (when the oldest counted order leaves the window). Its cost, a Redis
        # list of up to N timestamps per key and a binary search over it per check,
        # against two counters for the sliding window, is small for order limits
        # (N is a handful per second or minute). The timestamps come from each
        # process's clock, so the hosts sharing a Redis need NTP, as they do anyway.
        return MovingWindowRateLimiter(storage)

    def _new_storage(self) -> Storage:
        if self._storage_url == "memory://":
            return MemoryStorage()
        retry = Retry(NoBackoff(), 1)
        storage = storage_from_string(
            self._storage_url,
            key_prefix=self._prefix,
            wrap_exceptions=True,
            socket_connect_timeout=_REDIS_TIMEOUT_S,
            socket_timeout=_REDIS_TIMEOUT_S,
            # limits types options as scalars but hands them as they are to redis-py,
            # whose Redis and RedisCluster take a Retry object here.
            retry=retry,  # type: ignore[arg-type]
            **self._options,
        )
        assert isinstance(storage, Storage)  # a sync scheme gives a sync storage
        return storage

    def _limiter_now(self) -> MovingWindowRateLimiter | None:
        """The limiter to use, or None while the storage is failing (let the order through)."""
        limiter = self._limiter
        if self._skip_until and time.monotonic() < self._skip_until:
            return None
        if limiter is not None:
            return limiter
        # The storage could not be opened before (a cluster that was down): try again,
        # in one thread only; the others let their orders through meanwhile.
        if not self._open_lock.acquire(blocking=False):
            return None
        try:
            if self._limiter is None:
                self._limiter = self._open()
            return self._limiter
        finally:
            self._open_lock.release()

    def _failed(self, error: Exception, orders: int = 1) -> None:
        """Fail open (``orders`` let through): stop asking the storage for a moment, warn now and then."""
        now = time.monotonic()
        self._skip_until = now + _SKIP_AFTER_FAILURE_S
        cause = error.storage_error if isinstance(error, limits.errors.StorageError) else error
        with self._warn_lock:
            self._let_through += orders
            if self._warned_at is not None and now - self._warned_at < _WARN_EVERY_S:
                return
            self._warned_at, skipped, self._let_through = now, self._let_through, 0
        log.warning(
            "rate limits not enforced: the storage at %s failed (%s: %s); "
            "%d order(s) let through uncounted since the last warning",
            self._shown_url,
            type(cause).__name__,
            cause,
            skipped,
        )

    def _count_let_through(self) -> None:
        with self._warn_lock:
            self._let_through += 1


def _parse(name: str, text: str | None) -> list[limits.RateLimitItem]:
    if text is None:
        return []
    try:
        # parse_many, not parse: parse("5/second; 100/hour") silently keeps only 5/second.
        items = limits.parse_many(text)
    except ValueError as error:
        raise InvalidInput(
            f"{name} rate limit {text!r} is not a limit like '5/second' or '20 per minute': {error}"
        ) from error
    for item in items:
        if item.amount < 1:
            raise InvalidInput(
                f"{name} rate limit {text!r} allows no orders at all; to turn the limit off, leave it unset"
            )
    return items


def _refusal(limit: _Limit, who: str, reset_time: float) -> RateLimited:
    window = limit.item.get_expiry()
    retry_after = min(window, max(1, math.ceil(reset_time - time.time())))
    name = f"buyer {who!r}" if limit.kind == "buyer" else f"IP address {who!r}"
    multiples, unit = limit.item.multiples, limit.item.GRANULARITY.name
    per = f"{multiples} {unit}" if multiples == 1 else f"{multiples} {unit}s"
    return RateLimited(
        f"{name} placed more than {limit.item.amount} orders per {per}; try again in {retry_after} s",
        retry_after,
        rule=f"per_{limit.kind}",
    )


def _storage_target(url: str | None, cluster: bool) -> tuple[str, dict[str, float | str | bool]]:
    """The limits storage URL for ``url`` (and extra options), or InvalidInput."""
    if url is None or url == "memory://":
        if cluster:
            raise InvalidInput("cluster=True needs the URL of a Redis Cluster node")
        return "memory://", {}
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as error:
        raise InvalidInput(f"rate limit storage URL is malformed: {error}") from error
    if parts.scheme == _CLUSTER_SCHEME:
        return url, {}
    if parts.scheme not in _REDIS_SCHEMES:
        raise InvalidInput(
            f"rate limit storage must be memory:// or a Redis URL (redis://, rediss://), not {parts.scheme}://"
        )
    if not cluster:
        return url, {}
    # limits spells a cluster redis+cluster://[user:password@]host:port[,host:port]: no
    # database, no query options, a port on every host, and no TLS scheme of its own.
    if parts.scheme == "redis+unix" or not parts.hostname:
        raise InvalidInput("cluster=True needs a host:port URL of a cluster node, not a socket path")
    if parts.path.strip("/") not in ("", "0") or parts.query:
        raise InvalidInput("a Redis Cluster has only database 0 and takes no URL options here")
    userinfo, _, _ = parts.netloc.rpartition("@")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    location = f"{host}:{parts.port or 6379}"
    options: dict[str, float | str | bool] = {"ssl": True} if parts.scheme == "rediss" else {}
    return f"{_CLUSTER_SCHEME}://{userinfo + '@' if userinfo else ''}{location}", options


def _without_password(url: str) -> str:
    """``url`` with its user and password left out, for logs."""
    parts = urllib.parse.urlsplit(url)
    _, _, hosts = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit((parts.scheme, hosts, parts.path, "", ""))
