"""A sweep's trials as one interactive parallel-coordinates page: every tuned parameter and the objective.

The page is self-contained (inline SVG, CSS and a little JavaScript, nothing fetched), so MLflow's
artifact viewer shows it offline in its sandboxed frame. The SVG is drawn here, so the plot is
there without scripts; the script adds brushing (drag along an axis to keep the trials in that
range, double-click to clear) and the link between a trial's line and its row in the table below.
"""

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

TOP, HEIGHT, GAP, SPACING, LEFT = 70, 300, 36, 170, 90  # px: plot area and axis spacing
NO_VALUE = "no value"  # where a failed or pruned trial meets the objective axis


@dataclass
class PlottedTrial:
    """One trial as the page draws it."""

    number: int
    params: Dict[str, Any]
    state: str
    value: Optional[float]
    name: str = ""  # its MLflow run's name, when known


@dataclass
class Axis:
    key: str
    values: List[Any]  # the trials' values on it (None: the trial has none)

    def numeric(self) -> bool:
        known = [v for v in self.values if v is not None]
        return bool(known) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in known)

    def log(self) -> bool:
        known = [v for v in self.values if v is not None]
        return self.numeric() and min(known) > 0 and max(known) / min(known) >= 20

    def position(self, value: Any) -> float:
        """0 (bottom) to 1 (top); None below the axis."""
        if value is None:
            return -GAP / HEIGHT
        if not self.numeric():
            choices = self.choices()
            return 0.5 if len(choices) == 1 else choices.index(repr(value)) / (len(choices) - 1)
        lo, hi = self.range()
        f = math.log if self.log() else float
        return 0.5 if lo == hi else (f(value) - f(lo)) / (f(hi) - f(lo))

    def choices(self) -> List[str]:
        return sorted({repr(v) for v in self.values if v is not None})

    def range(self) -> Any:
        known = [v for v in self.values if v is not None]
        return min(known), max(known)

    def ticks(self) -> List[Any]:
        """(position, label) pairs."""
        if not self.numeric():
            choices = self.choices()
            return [
                (0.5 if len(choices) == 1 else i / (len(choices) - 1), c.strip("'"))
                for i, c in enumerate(choices)
            ]
        lo, hi = self.range()
        if lo == hi:
            return [(0.5, _fmt(lo))]
        if self.log():
            steps = [lo * (hi / lo) ** (i / 4) for i in range(5)]
        else:
            steps = [lo + (hi - lo) * i / 4 for i in range(5)]
        return [(self.position(v), _fmt(v)) for v in steps]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _y(position: float) -> float:
    return round(TOP + HEIGHT * (1 - position), 1)


def _colour(t: Optional[float]) -> str:
    """Red (worst) to green (best); grey without a value."""
    return "#9e9e9e" if t is None else f"hsl({round(120 * t)}, 70%, 40%)"


def axes(trials: Sequence[PlottedTrial], metric: str) -> List[Axis]:
    keys = sorted({key for t in trials for key in t.params})
    found = [Axis(key, [t.params.get(key) for t in trials]) for key in keys]
    return [*found, Axis(metric, [t.value for t in trials])]


def render(trials: Sequence[PlottedTrial], metric: str, maximize: bool, title: str) -> str:
    """The page for ``trials`` (in order of their numbers)."""
    trials = sorted(trials, key=lambda t: t.number)
    lines = axes(trials, metric)
    width = LEFT * 2 + SPACING * (len(lines) - 1)
    scored = [t.value for t in trials if t.value is not None]
    lo, hi = (min(scored), max(scored)) if scored else (0.0, 0.0)
    svg = [
        f'<svg id="plot" width="{width}" height="{TOP + HEIGHT + GAP + 30}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for row, t in enumerate(trials):
        ys = [_y(axis.position(axis.values[row])) for axis in lines]
        score = None if t.value is None else (0.5 if hi == lo else (t.value - lo) / (hi - lo))
        score = score if score is None or maximize else 1 - score
        points = " L".join(f"{LEFT + i * SPACING},{y}" for i, y in enumerate(ys))
        label = html.escape(t.name or f"trial {t.number}")
        svg.append(
            f'<path class="trial {t.state.lower()}" data-trial="{t.number}" '
            f'data-y="{",".join(map(str, ys))}" d="M{points}" stroke="{_colour(score)}">'
            f"<title>{label}: {metric}={_fmt(t.value)} ({t.state})</title></path>"
        )
    for i, axis in enumerate(lines):
        svg.append(_axis_svg(axis, LEFT + i * SPACING, i))
    svg.append("</svg>")
    return PAGE.format(
        title=html.escape(title),
        svg="\n".join(svg),
        table=_table(trials, lines, metric),
        script=SCRIPT,
        count=len(trials),
    )


def _axis_svg(axis: Axis, x: int, index: int) -> str:
    parts = [
        f'<g class="axis" data-axis="{index}" data-key="{html.escape(axis.key)}">',
        f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{TOP + HEIGHT}"/>',
        f'<text class="name" x="{x}" y="{TOP - 30}">{html.escape(axis.key)}'
        f"{' (log)' if axis.log() else ''}</text>",
    ]
    for position, label in axis.ticks():
        parts.append(f'<text class="tick" x="{x - 6}" y="{_y(position) + 4}">{html.escape(label)}</text>')
    if any(v is None for v in axis.values):
        parts.append(f'<text class="tick" x="{x - 6}" y="{TOP + HEIGHT + GAP + 4}">{NO_VALUE}</text>')
    parts.append(f'<rect class="brush" x="{x - 12}" y="{TOP}" width="24" height="{HEIGHT}"/></g>')
    return "".join(parts)


def _table(trials: Sequence[PlottedTrial], lines: Sequence[Axis], metric: str) -> str:
    head = "".join(f"<th>{html.escape(a.key)}</th>" for a in lines[:-1])
    rows = [f"<tr><th>trial</th>{head}<th>{html.escape(metric)}</th><th>state</th></tr>"]
    for i, t in enumerate(trials):
        cells = "".join(f"<td>{html.escape(_fmt(a.values[i]))}</td>" for a in lines[:-1])
        rows.append(
            f'<tr data-trial="{t.number}"><td>{html.escape(t.name or str(t.number))}</td>{cells}'
            f"<td>{'' if t.value is None else _fmt(t.value)}</td><td>{t.state}</td></tr>"
        )
    return "\n".join(rows)


def write(trials: Sequence[PlottedTrial], metric: str, maximize: bool, title: str, path: Path) -> Path:
    path.write_text(render(trials, metric, maximize, title), encoding="utf-8")
    return path


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 13px sans-serif; margin: 12px; color: #222; }}
path.trial {{ fill: none; stroke-width: 2.5; opacity: 0.85; cursor: pointer; }}
path.trial.fail, path.trial.pruned, path.trial.killed, path.trial.running {{ stroke-dasharray: 5 4; }}
path.trial.dim {{ opacity: 0.08; }}
path.trial.on, path.trial:hover {{ stroke-width: 5; opacity: 1; }}
.axis line {{ stroke: #333; stroke-width: 1.5; }}
.axis text.name {{ text-anchor: middle; font-weight: bold; }}
.axis text.tick {{ text-anchor: end; fill: #555; font-size: 11px; paint-order: stroke; stroke: #fff; stroke-width: 3px; }}
.axis rect.brush {{ fill: transparent; cursor: crosshair; }}
.axis rect.sel {{ fill: rgba(40, 100, 220, 0.18); stroke: #2864dc; pointer-events: none; }}
table {{ border-collapse: collapse; margin-top: 8px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }}
tr.on td {{ background: #fff3c4; }} tr.dim td {{ color: #bbb; }}
</style></head><body>
<h3>{title}</h3>
<p id="summary">{count} trials. Drag along an axis to keep a range (double-click it to clear); hover a line
or a row to pick out a trial.</p>
{svg}
<table id="trials">
{table}
</table>
<script>{script}</script>
</body></html>
"""

SCRIPT = """
(function () {
  var svg = document.getElementById('plot'), ns = 'http://www.w3.org/2000/svg', ranges = {};
  var paths = Array.prototype.slice.call(svg.querySelectorAll('path.trial'));
  function rows(n) { return document.querySelectorAll('tr[data-trial="' + n + '"]'); }
  function mark(n, on) {
    svg.querySelectorAll('path[data-trial="' + n + '"]').forEach(function (p) { p.classList.toggle('on', on); });
    rows(n).forEach(function (r) { r.classList.toggle('on', on); });
  }
  function filter() {
    paths.forEach(function (p) {
      var ys = p.getAttribute('data-y').split(',').map(Number), keep = true;
      Object.keys(ranges).forEach(function (i) { var r = ranges[i]; if (ys[i] < r[0] || ys[i] > r[1]) keep = false; });
      p.classList.toggle('dim', !keep);
      rows(p.getAttribute('data-trial')).forEach(function (r) { r.classList.toggle('dim', !keep); });
    });
  }
  paths.concat(Array.prototype.slice.call(document.querySelectorAll('tr[data-trial]'))).forEach(function (el) {
    var n = el.getAttribute('data-trial');
    el.addEventListener('mouseenter', function () { mark(n, true); });
    el.addEventListener('mouseleave', function () { mark(n, false); });
  });
  svg.querySelectorAll('g.axis').forEach(function (g) {
    var i = g.getAttribute('data-axis'), brush = g.querySelector('rect.brush'), sel = null, start = null;
    function y(e) { var box = svg.getBoundingClientRect(); return e.clientY - box.top; }
    brush.addEventListener('mousedown', function (e) {
      start = y(e); if (!sel) { sel = document.createElementNS(ns, 'rect'); sel.setAttribute('class', 'sel'); g.appendChild(sel); }
      sel.setAttribute('x', brush.getAttribute('x')); sel.setAttribute('width', brush.getAttribute('width'));
      e.preventDefault();
    });
    svg.addEventListener('mousemove', function (e) {
      if (start === null) return;
      var a = Math.min(start, y(e)), b = Math.max(start, y(e));
      sel.setAttribute('y', a); sel.setAttribute('height', b - a); ranges[i] = [a, b]; filter();
    });
    window.addEventListener('mouseup', function () { start = null; });
    brush.addEventListener('dblclick', function () { delete ranges[i]; if (sel) { sel.remove(); sel = null; } filter(); });
  });
})();
"""
