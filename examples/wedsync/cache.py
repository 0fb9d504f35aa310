"""Two-tier response cache: a bounded in-process TTL map (L1) in front of optional Redis (L2)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger("examples.wedsync.cache")

Tier = Literal["l1", "l2"]


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached response body and the tier that answered."""

    value: bytes
    tier: Tier


class L1Cache:
    """LRU map with a per-entry TTL; the clock is injectable so expiry is testable."""

    def __init__(
        self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def set(self, key: str, value: bytes) -> None:
        self._entries[key] = (self._clock() + self._ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)


class RedisTier:
    """Redis as a best-effort L2: errors never reach a request, they pause the tier instead.

    The first failure of an outage is logged once as a warning; the tier then stays off for
    `retry_after_s` (so an unreachable Redis costs one failed call per pause, not one per request)
    and is tried again afterwards, logging once more when it comes back.
    """

    def __init__(
        self,
        client: Redis,
        ttl_s: float,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._down_until: float | None = None

    @classmethod
    def from_url(cls, url: str, ttl_s: float) -> RedisTier:
        # Short timeouts and no retries: a slow or absent L2 must cost less than the database.
        client = Redis.from_url(
            url,
            socket_connect_timeout=0.25,
            socket_timeout=0.25,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, ttl_s)

    @property
    def available(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    async def ping(self) -> bool:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        self._recovered()
        return True

    async def get(self, key: str) -> bytes | None:
        if not self.available:
            return None
        try:
            value = await self._client.get(key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._recovered()
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes) -> None:
        if not self.available:
            return
        try:
            await self._client.set(key, value, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._recovered()

    async def delete(self, key: str) -> None:
        # Tried even while paused: a missed invalidation would serve stale data after recovery.
        try:
            await self._client.delete(key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._recovered()

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:
            logger.warning(
                "Redis L2 cache unreachable (%s); serving from L1 only, retrying every %.0fs",
                exc,
                self._retry_after_s,
            )
        self._down_until = self._clock() + self._retry_after_s

    def _recovered(self) -> None:
        if self._down_until is not None:
            logger.warning("Redis L2 cache reachable again")
            self._down_until = None


class TwoTierCache:
    """L1 answers first; an L2 hit is copied into L1; writes and invalidations go to both."""

    def __init__(self, l1: L1Cache, l2: RedisTier | None, namespace: str) -> None:
        self._l1 = l1
        self._l2 = l2
        self._prefix = f"{namespace}:v1:"

    @property
    def tiers(self) -> str:
        return "l1+l2" if self._l2 is not None and self._l2.available else "l1"

    async def get(self, key: str) -> CacheHit | None:
        key = self._prefix + key
        value = self._l1.get(key)
        if value is not None:
            return CacheHit(value, "l1")
        if self._l2 is None:
            return None
        value = await self._l2.get(key)
        if value is None:
            return None
        self._l1.set(key, value)
        return CacheHit(value, "l2")

    async def set(self, key: str, value: bytes) -> None:
        key = self._prefix + key
        self._l1.set(key, value)
        if self._l2 is not None:
            await self._l2.set(key, value)

    async def invalidate(self, key: str) -> None:
        key = self._prefix + key
        self._l1.delete(key)
        if self._l2 is not None:
            await self._l2.delete(key)

    async def close(self) -> None:
        if self._l2 is not None:
            await self._l2.close()
