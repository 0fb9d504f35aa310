"""Whether two runs were measured on comparable machines: the environment check."""

from __future__ import annotations

from collections.abc import Collection, Mapping

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
    "table_rows",
)
# Not compared: the raw size of the data set in bytes moves by tens of KB between identical
# setups (free space, hint bits), and with every index a migration adds; the row count of each
# table says whether the data is the same.


def environment_differences(
    base_env: Mapping[str, object],
    cur_env: Mapping[str, object],
    tables: Collection[str] | None = None,
) -> tuple[str, ...]:
    """One reason per differing key: ``"cpu_count: 4 -> 2"``; settings name each changed one.

    Mappings (planner settings, rows per table) are compared entry by entry, so the reason says
    ``"planner_settings.random_page_cost: 4 -> 1.1"`` rather than that "something" changed.
    ``tables``, when given, are the only tables whose row counts matter (those an item reads);
    a table on one side only counts as 0 rows on the other (a migration's new empty table is
    no difference).
    """
    reasons: list[str] = []
    for key in ENVIRONMENT_KEYS:
        if key not in base_env or key not in cur_env:
            continue
        was, now = base_env[key], cur_env[key]
        if key == "table_rows" and isinstance(was, Mapping) and isinstance(now, Mapping):
            names = set(was) | set(now) if tables is None else set(tables)
            was = {t: was.get(t, 0) for t in names}
            now = {t: now.get(t, 0) for t in names}
        reasons += _differences(key, was, now)
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
