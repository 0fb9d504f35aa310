"""WedSync's settings, read once from the environment at start-up."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """An environment variable is missing or malformed; the message names it and the fix."""


@dataclass(frozen=True, slots=True)
class Settings:
    """How one WedSync process runs; the regression switches are `slowdown` and `no_cache`."""

    database_url: str
    redis_url: str | None = None
    token: str | None = None  # when set, /api/* needs `Authorization: Bearer <token>`
    slowdown: float = 1.0  # stretch server time by this factor (sleeps after the handler)
    no_cache: bool = False  # bypass both cache tiers
    cache_ttl_s: float = 30.0
    cache_max_entries: int = 2048
    cache_namespace: str = "wedsync"  # prefix of Redis keys, so test runs do not collide
    pool_min_size: int = 2
    pool_max_size: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse DATABASE_URL, REDIS_URL and the WEDSYNC_* variables."""
        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            raise SettingsError(
                "DATABASE_URL is not set: export an asyncpg DSN such as "
                "postgresql://postgres@127.0.0.1:5432/wedsync"
            )
        return cls(
            database_url=database_url,
            redis_url=env.get("REDIS_URL", "").strip() or None,
            token=env.get("WEDSYNC_TOKEN", "").strip() or None,
            slowdown=_factor(env, "WEDSYNC_SLOWDOWN", 1.0),
            no_cache=_flag(env, "WEDSYNC_NO_CACHE"),
            cache_ttl_s=_positive(env, "WEDSYNC_CACHE_TTL_S", 30.0),
            cache_namespace=env.get("WEDSYNC_CACHE_NAMESPACE", "").strip() or "wedsync",
        )


def _number(env: Mapping[str, str], name: str, default: float, example: str) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number like {example}, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}: expected a finite number like {example}, got {raw!r}")
    return value


def _factor(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, "1.25")
    if value < 1.0:
        raise SettingsError(f"{name}: expected a factor >= 1 like 1.25 (1 = off), got {value}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, "30")
    if value <= 0:
        raise SettingsError(f"{name}: expected a number of seconds > 0, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}: expected 1 or 0, got {raw!r}")
