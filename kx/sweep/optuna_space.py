"""A parsed search space (:class:`kx.sweep.space.Param`) as Optuna distributions, samplers and pruners.

=================================  ===================================================
``choice(a, b)`` / ``a,b``         ``CategoricalDistribution`` (numbers, strings, booleans)
``range(lo, hi, step)``            ``IntDistribution(lo, last, step)``
``int(interval(lo, hi))``          ``IntDistribution(lo, hi)``
``interval(lo, hi)``               ``FloatDistribution(lo, hi)``
``tag(log, ...)``                  the same with ``log=True`` (Optuna: step 1 only)
=================================  ===================================================
"""

from typing import Any, Dict, List, Optional, Sequence

from hydra.utils import instantiate

from kx.config.sweep import PRUNERS, SAMPLERS
from kx.sweep.space import Param, SpaceError

_PRIMITIVE = (type(None), bool, int, float, str)


def distribution(param: Param) -> Any:
    """The Optuna distribution of one swept parameter."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    where = f"sweep.params.{param.key}={param.expression!r}"
    if param.kind == "categorical":
        bad = [v for v in param.choices if not isinstance(v, _PRIMITIVE)]
        if bad:
            raise SpaceError(f"{where}: choice values must be numbers, strings or booleans, not {bad[0]!r}.")
        return CategoricalDistribution(list(param.choices))
    if param.kind == "int":
        if param.log and (param.step or 1) != 1:
            raise SpaceError(
                f"{where}: a log-scaled range needs step 1 (Optuna samples log ranges unstepped)."
            )
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=param.step or 1)
    if param.kind == "float":
        return FloatDistribution(float(param.low), float(param.high), log=param.log)
    raise SpaceError(f"{where}: a fixed value is not a distribution.")


def distributions(params: Sequence[Param]) -> Dict[str, Any]:
    """Every swept parameter's distribution, in the space's order."""
    return {p.key: distribution(p) for p in params if p.swept}


def suggest(trial: Any, name: str, dist: Any) -> Any:
    """Draw ``name`` from ``dist`` for ``trial`` (a queued trial keeps the value it was given)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def grid(params: Sequence[Param]) -> Dict[str, List[Any]]:
    """The values of every swept parameter for a grid search; an interval has none."""
    values: Dict[str, List[Any]] = {}
    for p in params:
        if p.kind == "categorical":
            values[p.key] = list(p.choices)
        elif p.kind == "int" and not p.log:
            values[p.key] = list(range(int(p.low), int(p.high) + 1, p.step or 1))
        elif p.swept:
            raise SpaceError(
                f"sweep.params.{p.key}={p.expression!r}: sampler=grid needs choice(...) or "
                "range(lo,hi[,step]) for every parameter; use sampler=tpe or random."
            )
    return values


def grid_size(params: Sequence[Param]) -> int:
    size = 1
    for values in grid(params).values():
        size *= len(values)
    return size


def grid_sampler(search_space: Dict[str, List[Any]], seed: Optional[int]) -> Any:
    """Optuna's grid sampler over ``search_space`` (``sweep.sampler=grid``'s ``_target_``)."""
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler, less its ``study.stop()`` once the grid is done: that call works only
        inside ``study.optimize``, and kx's budget already ends the sweep at the grid's size."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler(search_space, seed=seed)


SEEDS_APART = 2**20  # more trials than a sweep runs: each sweep seed's draws have their own seeds


def draw_seed(kind: str, seed: Optional[int], number: int) -> Optional[int]:
    """The seed of the sampler that draws trial ``number`` of a sweep seeded with ``seed``. Random and
    TPE draws get one per trial (workers started together draw different parameters) and per sweep
    seed (``sweep.seed=1`` is not ``sweep.seed=0``'s draws one trial later; seeds below
    ``2**32 // SEEDS_APART`` draw sequences of their own; seed 0's trial n is seeded with n). A grid
    keeps the sweep's seed: the sampler that serves ``ask()`` picks the trial's index in its shuffled
    grid, and the one built for the draw reads that index in its own, so every one must shuffle alike."""
    if seed is None or kind == "grid":
        return seed
    return (seed * SEEDS_APART + number) % 2**32


def sampler(kind: str, params: Sequence[Param], seed: Optional[int], trials: int) -> Any:
    """Optuna's sampler for ``sweep.sampler`` (:data:`kx.config.sweep.SAMPLERS`), seeded with ``seed``.
    TPE samples at random for its first third of the budget (2 to 10 trials; Optuna's default, 10,
    is all of a small budget); the grid is the space's values."""
    settings: Dict[str, Any] = {"seed": seed}
    if kind == "tpe":
        settings["n_startup_trials"] = max(2, min(10, trials // 3))
    if kind == "grid":
        settings["search_space"] = grid(params)
    return instantiate(SAMPLERS[kind](**settings), _convert_="all")


def pruner(kind: str) -> Any:
    """Optuna's pruner for ``sweep.pruner`` (:data:`kx.config.sweep.PRUNERS`)."""
    return instantiate(PRUNERS[kind]())


def signature(params: Sequence[Param]) -> str:
    """The space as one canonical line: a resumed study must have the same one."""
    fields = ("kind", "choices", "low", "high", "step", "log")
    return "; ".join(
        f"{p.key}:" + ",".join(repr(getattr(p, f)) for f in fields)
        for p in sorted(params, key=lambda p: p.key)
    )
