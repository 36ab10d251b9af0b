"""Rate limits: in-memory token buckets per authenticated caller and per failing client address.

Two budgets are charged per caller (its checksummed address, known only once the request signature
verified, so nobody can spend another caller's quota by naming its keyid): one for reads (GET, HEAD,
OPTIONS) and one for writes. A third is charged per client address for every request that fails
authentication; once an address has used it up, its failures are answered ``429 rate-limited``
instead of ``401``, which bounds signature-guessing floods and hides why each guess failed.

Each bucket holds at most ``burst`` tokens and refills continuously at ``rate`` per second; a request
spends one token and is refused (nothing spent) when less than one is left. Buckets live in one
least-recently-used table per budget: a bucket idle long enough to have refilled completely is
indistinguishable from a new one and is dropped, and the table never holds more than
``max_buckets`` (the least recently used goes first). Every operation is O(1) under one lock.
Limits are per process: each worker of a multi-worker deployment counts on its own.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger_api.errors import ConfigurationError, RateLimited

if TYPE_CHECKING:
    from ledger_api.config import Settings

__all__ = ["READ_METHODS", "Budget", "RateLimiter", "RateLimits", "TokenBuckets", "address_key", "rate_limits_from"]

#: Methods charged to a caller's read budget; every other method is a write.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Idle buckets dropped per operation at most (keeps each request O(1); the table drains over time).
_EVICT_PER_CALL = 8


@dataclass(frozen=True, kw_only=True)
class Budget:
    """One token bucket's shape: up to ``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigurationError(f"a rate limit needs a positive finite rate, not {self.rate!r}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ConfigurationError(f"a rate limit needs a burst of at least 1, not {self.burst!r}")

    @property
    def refill_seconds(self) -> float:
        """Seconds an empty bucket takes to fill up completely."""
        return self.burst / self.rate


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    """The service's budgets: per caller for reads and writes, per client address for failed authentications."""

    reads: Budget = field(default_factory=lambda: Budget(rate=20, burst=100))
    writes: Budget = field(default_factory=lambda: Budget(rate=5, burst=30))
    failures: Budget = field(default_factory=lambda: Budget(rate=1, burst=30))
    #: Buckets kept per budget at most (memory bound; the least recently used bucket is dropped first).
    max_buckets: int = 100_000

    def __post_init__(self) -> None:
        if self.max_buckets < 1:
            raise ConfigurationError(f"max_buckets must be at least 1, not {self.max_buckets}")


def rate_limits_from(settings: Settings) -> RateLimits | None:
    """The limits ``LEDGER_RATE_LIMIT_*`` ask for; ``None`` when ``LEDGER_RATE_LIMIT_ENABLED`` is false."""
    if not settings.rate_limit_enabled:
        return None
    return RateLimits(
        reads=Budget(rate=settings.rate_limit_read_rate, burst=settings.rate_limit_read_burst),
        writes=Budget(rate=settings.rate_limit_write_rate, burst=settings.rate_limit_write_burst),
        failures=Budget(rate=settings.rate_limit_failure_rate, burst=settings.rate_limit_failure_burst),
    )


class TokenBuckets:
    """Token buckets of one :class:`Budget`, one per key, in a bounded least-recently-used table.

    Thread-safe. ``clock`` returns seconds and must not go backwards (default ``time.monotonic``).
    """

    def __init__(
        self, budget: Budget, *, max_buckets: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = budget
        self._max_buckets = max_buckets
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [tokens, last touched]; least recently touched first (so also oldest ``last touched``).
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket. Returns 0.0 when there was one, else the seconds until
        there will be one (and spends nothing)."""
        with self._lock:
            now = self._clock()
            self._evict_idle(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_buckets:
                    self._buckets.popitem(last=False)
                bucket = [self.budget.burst, now]
                self._buckets[key] = bucket
            else:
                elapsed = max(0.0, now - bucket[1])
                bucket[0] = min(self.budget.burst, bucket[0] + elapsed * self.budget.rate)
                bucket[1] = now
                self._buckets.move_to_end(key)
            if bucket[0] >= 1:
                bucket[0] -= 1
                return 0.0
            return (1 - bucket[0]) / self.budget.rate

    def _evict_idle(self, now: float) -> None:
        """Drop buckets untouched for long enough to be full again (they equal fresh ones)."""
        horizon = now - self.budget.refill_seconds
        for _ in range(_EVICT_PER_CALL):
            oldest = next(iter(self._buckets.values()), None)
            if oldest is None or oldest[1] > horizon:
                return
            self._buckets.popitem(last=False)


def address_key(host: str | None) -> str:
    """The failure-bucket key of a client address: IPv4 as is, IPv6 by its /64 network (one host
    usually holds a whole /64), anything else (``testclient``, a Unix socket) verbatim."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter:
    """The service's rate limits (``app.state.rate_limiter``): charges callers and failing addresses."""

    def __init__(self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or RateLimits()
        self.reads = TokenBuckets(self.limits.reads, max_buckets=self.limits.max_buckets, clock=clock)
        self.writes = TokenBuckets(self.limits.writes, max_buckets=self.limits.max_buckets, clock=clock)
        self.failures = TokenBuckets(self.limits.failures, max_buckets=self.limits.max_buckets, clock=clock)

    def check_caller(self, address: str, method: str) -> None:
        """Charge one request of an authenticated caller to its read or write budget; raise
        :class:`~ledger_api.errors.RateLimited` when that budget is used up."""
        write = method.upper() not in READ_METHODS
        wait = (self.writes if write else self.reads).take(address)
        if wait > 0:
            kind = "write" if write else "read"
            raise RateLimited(f"this caller's {kind} rate limit is used up", retry_after=wait)

    def check_failure(self, host: str | None) -> None:
        """Count a failed authentication from client address ``host``; raise
        :class:`~ledger_api.errors.RateLimited` once that address has used up its failure budget."""
        wait = self.failures.take(address_key(host))
        if wait > 0:
            raise RateLimited("too many requests from this address failed authentication", retry_after=wait)
