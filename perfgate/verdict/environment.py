"""Whether two runs were measured on comparable machines: the environment check."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ENVIRONMENT_KEYS", "environment_differences"]

# What makes timings incomparable, in the order reasons are listed. A key is compared only when
# both environments record it: an older baseline that never stored a key is not "different".
ENVIRONMENT_KEYS = (
    "cpu_model",
    "cpu_count",
    "python",
    "perfgate",
    "postgres_version",
    "planner_settings",
    "dataset_size",
)


def environment_differences(
    base_env: Mapping[str, object], cur_env: Mapping[str, object]
) -> tuple[str, ...]:
    """One reason per differing key: ``"cpu_count: 4 -> 2"``; settings name each changed one.

    Mappings (planner settings, dataset sizes per table) are compared entry by entry, so the
    reason says ``"planner_settings.random_page_cost: 4 -> 1.1"`` rather than that "something"
    changed.
    """
    reasons: list[str] = []
    for key in ENVIRONMENT_KEYS:
        if key not in base_env or key not in cur_env:
            continue
        reasons += _differences(key, base_env[key], cur_env[key])
    return tuple(reasons)


def _differences(key: str, was: object, now: object) -> list[str]:
    if isinstance(was, Mapping) and isinstance(now, Mapping):
        out: list[str] = []
        for sub in sorted(set(was) | set(now), key=str):
            before, after = was.get(sub, "(unset)"), now.get(sub, "(unset)")
            if before != after:
                out.append(f"{key}.{sub}: {_show(before)} -> {_show(after)}")
        return out
    return [] if was == now else [f"{key}: {_show(was)} -> {_show(now)}"]


def _show(value: object) -> str:
    return value if isinstance(value, str) else repr(value)
