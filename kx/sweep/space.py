"""A sweep file's search space, parsed with Hydra's own override parser into one neutral form.

Every tuner translates :class:`Param` (Optuna distributions locally, SageMaker parameter ranges in
launch.py), so the grammar is read in one place:

=============================  ==========================================================
``choice(a, b)`` or ``a,b``    ``categorical``: the listed values
``range(lo, hi[, step])``      ``int`` from ``lo`` to the last value below ``hi`` (Python's range)
``int(interval(lo, hi))``      ``int`` from ``lo`` to ``hi``, both included
``interval(lo, hi)``           ``float`` from ``lo`` to ``hi``
``tag(log, ...)``              the same, sampled on a log scale (``lo`` > 0)
a plain value                  ``fixed``: the same value in every trial
=============================  ==========================================================
"""

from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Tuple

from kx.errors import KxError


class SpaceError(KxError):
    """A search-space entry kx cannot use; the message names the parameter and the reason."""


@dataclass(frozen=True)
class Param:
    """One swept (or fixed) config key."""

    key: str
    kind: str  # "categorical", "int", "float" or "fixed"
    choices: Tuple[Any, ...] = ()  # categorical; fixed: the one value
    low: Optional[float] = None  # int and float: inclusive bounds
    high: Optional[float] = None
    step: Optional[int] = None  # int only: 1 unless a stepped range
    log: bool = False
    expression: str = field(default="", compare=False)  # as written in the sweep file

    @property
    def swept(self) -> bool:
        return self.kind != "fixed"


def parse_param(key: str, expression: Any) -> Param:
    """Parse ``key: expression`` from a sweep file's ``params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import HydraException

    text = str(expression).strip()
    try:
        value = OverridesParser.create().parse_override(f"{key}={text}").value()
    except HydraException as err:
        raise SpaceError(
            f"sweep.params.{key}={text!r} is not in Hydra's sweep grammar "
            f"({_first_line(err)}); use choice(...), range(lo,hi[,step]), interval(lo,hi), "
            "int(interval(lo,hi)) or tag(log, interval(lo,hi))."
        ) from None
    log = "log" in getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep):
        param = _categorical(key, text, [_unquoted(v) for v in value.list])
    elif isinstance(value, RangeSweep):
        param = _range(key, text, value.start, value.stop, value.step)
    elif isinstance(value, IntervalSweep):
        param = _interval(key, text, value.start, value.end)
    else:
        param = Param(key, "fixed", choices=(value,), expression=text)
    if log:
        if param.kind not in ("int", "float"):
            raise SpaceError(f"sweep.params.{key}={text!r}: tag(log, ...) applies to an interval or a range.")
        if param.low <= 0:
            raise SpaceError(f"sweep.params.{key}={text!r}: a log scale needs a lower bound > 0.")
        param = Param(**{**param.__dict__, "log": True})
    return param


def parse_space(params: Mapping[str, Any]) -> List[Param]:
    """Every entry of a sweep file's ``params``, in the file's order."""
    return [parse_param(str(key), expression) for key, expression in params.items()]


def _unquoted(value: Any) -> Any:
    """A choice's element as its value: Hydra leaves quoted strings in it (lists' too) as QuotedString."""
    from hydra.core.override_parser.types import QuotedString

    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, list):
        return [_unquoted(v) for v in value]
    if isinstance(value, dict):
        return {k: _unquoted(v) for k, v in value.items()}
    return value


def _categorical(key: str, text: str, values: List[Any]) -> Param:
    if not values:
        raise SpaceError(f"sweep.params.{key}={text!r}: a choice needs at least one value.")
    if len(set(map(repr, values))) != len(values):
        raise SpaceError(f"sweep.params.{key}={text!r}: a choice lists a value twice.")
    return Param(key, "categorical", choices=tuple(values), expression=text)


def _range(key: str, text: str, start: Any, stop: Any, step: Any) -> Param:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step)):
        raise SpaceError(
            f"sweep.params.{key}={text!r}: range() takes integers; use interval(lo,hi) for real numbers."
        )
    if step <= 0 or start >= stop:
        raise SpaceError(f"sweep.params.{key}={text!r}: range(lo,hi[,step]) needs lo < hi and step > 0.")
    high = start + step * ((stop - 1 - start) // step)  # the last value range() yields
    return Param(key, "int", low=start, high=high, step=step, expression=text)


def _interval(key: str, text: str, start: Any, end: Any) -> Param:
    if not start < end:
        raise SpaceError(f"sweep.params.{key}={text!r}: interval(lo,hi) needs lo < hi.")
    if isinstance(start, int) and isinstance(end, int):
        return Param(key, "int", low=start, high=end, step=1, expression=text)
    return Param(key, "float", low=float(start), high=float(end), expression=text)


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
