"""The one rounds loop: compare with the baseline, and while that is unclear, measure and pool.

Both ways of comparing use it, with the difference as a parameter: with a stored baseline the
base side is fixed and each further round re-measures the current side; interleaved, each
round measures both sides in alternating blocks. Every round is another look at the data, so
each is tested at alpha / max_rounds (``per_look``) and re-measuring cannot inflate false
alarms. The budget checks and the table stay those of the first round, so every figure shown
next to a check is the one it was made on; the comparisons use all rounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from perfgate.budgets.model import RegressionPolicy
from perfgate.plan import NodeChange, diff_plans
from perfgate.verdict.compare import compare_results, needs_more, overall, per_look
from perfgate.verdict.details import QueryDetails, Rounds, RoundsMode
from perfgate.verdict.model import Verdict
from perfgate.verdict.pooling import pool
from perfgate.verdict.values import Comparison, Outcome, Status

__all__ = ["NextRound", "Settled", "judged", "plan_changes", "settle"]

# A further round: what to add to each side (None for the base side: it stays as it is), or
# None when the round could not be measured, which ends the loop.
NextRound = Callable[[], "tuple[Verdict | None, Verdict] | None"]


@dataclass(frozen=True, slots=True)
class Settled:
    """Where the rounds ended: the comparisons, how many rounds, the pooled base side."""

    comparisons: tuple[Comparison, ...]
    rounds: int
    baseline: Verdict


def settle(
    base: Verdict,
    current: Verdict,
    next_round: NextRound,
    policy: RegressionPolicy,
    *,
    env_reasons: Sequence[str] = (),
) -> Settled:
    """Compare; while a comparison could be settled by more data, take another round."""
    looks = per_look(policy)
    comparisons = compare_results(base, current, looks, env_reasons=env_reasons)
    rounds = 1
    while needs_more(comparisons) and rounds < policy.max_rounds:
        more = next_round()
        if more is None:
            break
        extra_base, extra_current = more
        if extra_base is not None:
            base = pool(base, extra_base)
        current = pool(current, extra_current)
        rounds += 1
        comparisons = compare_results(base, current, looks, env_reasons=env_reasons, seed=rounds)
    return Settled(comparisons, rounds, base)


def judged(
    first: Verdict,
    settled: Settled,
    policy: RegressionPolicy,
    mode: RoundsMode,
    blocks: int | None = None,
) -> Verdict:
    """The first round's verdict with the comparisons, the rounds, and the plan changes.

    A regression (or an inconclusive comparison under ``fail_on_inconclusive``) fails it.
    """
    comparisons = settled.comparisons
    if settled.rounds > 1:
        note = f"; {settled.rounds} rounds of measurement pooled"
        comparisons = tuple(
            dataclasses.replace(c, reason=c.reason + note) if c.metric.endswith("_ms") else c
            for c in comparisons
        )
    details = first.details
    if isinstance(details, QueryDetails) and isinstance(settled.baseline.details, QueryDetails):
        changes = plan_changes(settled.baseline.details, details)
        if changes:
            details = dataclasses.replace(details, plan_changes=changes)
    status = first.status
    if overall(comparisons, policy) == Outcome.REGRESSION and status != Status.ERROR:
        status = Status.FAILED
    return dataclasses.replace(
        first,
        comparisons=comparisons,
        details=details,
        status=status,
        rounds=Rounds(mode, settled.rounds, blocks),
    )


def plan_changes(base: QueryDetails, current: QueryDetails) -> tuple[NodeChange, ...]:
    """The plan nodes that changed since the baseline, for the report's side-by-side."""
    if base.plan is None or current.plan is None:
        return ()
    return diff_plans(base.plan, current.plan)
