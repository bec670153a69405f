"""Hyperband over epochs for the local sweeper: each trial trains its own epoch budget.

The rungs are ``train.epochs`` divided by 3, 9, ... down to ``sweep.min_epochs`` (train.epochs 18,
min_epochs 2: rungs 2, 6, 18). Hyperband's brackets start their new parameter sets at successive
rungs (bracket 0 at the lowest, the last one at train.epochs); they fill in order, the cheapest
first, each with Hyperband's share of new parameter sets, and start over. Within a bracket,
successive halving is asynchronous: as soon as the best third of the trials completed at a rung
holds one that has not moved up yet, the next trial retrains its parameters with the next rung's
epochs, from scratch; the others stop at their rung. A trial's ``train.epochs`` is its own
budget, so its cosine schedule and warm-up run over that budget, not over the sweep's largest one.
Which trial moves up is claimed once in the study's storage, so workers sharing a study promote it
once (a claim whose trial came too late for the budget is released for a later place). Every trial,
a moved-up one too, takes a place in ``sweep.budget.trials``.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from kx.errors import KxError
from kx.sweep.space import Param

ETA = 3  # the reduction factor: a third of each rung moves up (SageMaker's Hyperband uses 3 as well)
EPOCHS_ATTR = "kx.epochs"  # trial user attribute: the epochs it trains (its rung)
BRACKET_ATTR = "kx.bracket"
PROMOTED_FROM_ATTR = "kx.promoted_from"  # the trial whose parameters it retrains with more epochs


def rungs(min_epochs: int, max_epochs: int) -> List[int]:
    """The epoch budgets, lowest first: ``max_epochs // 3**k`` while at least ``min_epochs``."""
    found, epochs = [], max_epochs
    while epochs >= min_epochs and epochs not in found:
        found.append(epochs)
        epochs //= ETA
    return sorted(found)


@dataclass(frozen=True)
class Run:
    """One trial as successive halving sees it."""

    number: int
    params: Dict[str, object]
    epochs: int
    bracket: int
    value: Optional[float]  # the objective when complete, else None
    promoted_from: Optional[int] = None


@dataclass(frozen=True)
class Next:
    """The next trial to start: a promotion (``promoted_from`` set) or new parameters."""

    epochs: int
    bracket: int
    promoted_from: Optional[int] = None
    params: Optional[Dict[str, object]] = None


def promotions(runs: Sequence[Run], ladder: Sequence[int], maximize: bool) -> List[Next]:
    """Every trial the rule moves up now, from the highest rung down (the most trained first)."""
    moved = {r.promoted_from for r in runs if r.promoted_from is not None}
    found: List[Next] = []
    for bracket in sorted({r.bracket for r in runs}):
        for rung in reversed(range(len(ladder) - 1)):
            done = [
                r for r in runs if r.bracket == bracket and r.epochs == ladder[rung] and r.value is not None
            ]
            done.sort(key=lambda r: r.value, reverse=maximize)  # type: ignore[arg-type, return-value]
            for run in done[: len(done) // ETA]:
                if run.number not in moved:
                    found.append(Next(ladder[rung + 1], bracket, run.number, dict(run.params)))
    return sorted(found, key=lambda n: -n.epochs)


def bracket_sizes(ladder: Sequence[int]) -> List[int]:
    """Hyperband's count of new parameter sets per bracket, bracket 0 (the lowest rung) first:
    ``ceil((s_max + 1) / (s + 1) * 3**s)`` with ``s`` the bracket's rungs above its first (rungs
    1, 3, 9: 9, 5 and 3), so that each bracket spends about the same epochs."""
    top = len(ladder) - 1
    return [math.ceil((top + 1) / (top - b + 1) * ETA ** (top - b)) for b in range(len(ladder))]


def new_trial(runs: Sequence[Run], ladder: Sequence[int]) -> Next:
    """New parameters for the bracket whose turn it is: the brackets fill in order, the cheapest
    first, and start over once each has its share (see :func:`bracket_sizes`)."""
    sizes = bracket_sizes(ladder)
    place = sum(r.promoted_from is None for r in runs) % sum(sizes)
    bracket = 0
    while place >= sizes[bracket]:
        place -= sizes[bracket]
        bracket += 1
    return Next(ladder[bracket], bracket)


def max_epochs(space: Sequence[Param], train_epochs: int) -> int:
    """The most epochs a trial trains: a fixed ``train.epochs`` in the sweep's params, else the
    config's. Hyperband gives each trial its epochs itself: a swept ``train.epochs`` is refused."""
    found = next((p for p in space if p.key == "train.epochs"), None)
    if found is not None and found.swept:
        raise KxError(
            "sweep.params.train.epochs with sweep.pruner=hyperband: Hyperband gives each trial "
            "its epochs itself, up to train.epochs; remove train.epochs from sweep.params "
            "and set train.epochs to the most a trial may train."
        )
    return int(found.choices[0]) if found is not None else int(train_epochs)


def ladder(space: Sequence[Param], train_epochs: int, min_epochs: int) -> List[int]:
    """The sweep's rungs (see :func:`rungs`); ``sweep.min_epochs`` outside 1..train.epochs is refused."""
    most = max_epochs(space, train_epochs)
    if not 1 <= min_epochs <= most:
        raise KxError(
            f"sweep.min_epochs={min_epochs}: Hyperband's fewest epochs must be from 1 to train.epochs={most}."
        )
    return rungs(min_epochs, most)
