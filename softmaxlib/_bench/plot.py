"""PNG plot: effective bandwidth of every implementation, one row of panels per
(section, dtype, thread count).

A row has up to two panels: one-row inputs (1 x n) as lines against n, when there
are at least ``MIN_LINE_SIZES`` sizes to draw a line through, and the other shapes
(batched ones, or every shape of a section with too few sizes for a line) as points
over their shape's name. softmaxlib is drawn solid with filled markers, peers dashed
with hollow markers, the yardstick dotted; each row's legend says so and sits to
the right of the data. The figure's title names the machine; each panel's title
says what it shows and on how many threads. A panel is drawn only with data in it.
"""

import dataclasses
import importlib.util
import math
import re

from softmaxlib._bench.flags import threads_text
from softmaxlib._bench.options import format_shape
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, grouped

#: A line needs at least this many sizes; with fewer the shapes are drawn as points.
MIN_LINE_SIZES = 3

STYLE = {
    OURS: {"linestyle": "-", "linewidth": 2.2, "marker": "o", "fill": True},
    PEER: {"linestyle": "--", "linewidth": 1.5, "marker": "o", "fill": False},
    YARDSTICK: {"linestyle": ":", "linewidth": 1.5, "marker": "x", "fill": True},
}
LEGEND_TITLE = "solid, filled: softmaxlib\ndashed, hollow: peers\ndotted: memory yardstick"


def matplotlib_available():
    return importlib.util.find_spec("matplotlib") is not None


@dataclasses.dataclass
class Panel:
    #: "lines" (1 x n against n) or "shapes" (points over each shape's name).
    kind: str
    title: str
    measurements: list


def panel_rows(sections):
    """The plot's rows: (row title, [Panel, ...]), only panels that hold data."""
    rows = []
    for section in sections:
        if not section.show_tables:
            continue
        # One panel per dtype and the thread count a measurement is compared at.
        groups = grouped(section.measurements, lambda m: (m.dtype, m.group_key()[-1]),
                         lambda m: m.gbs is not None)
        for (dtype, threads), ms in groups.items():
            one_row = [m for m in ms if m.shape[0] == 1]
            sizes = {m.size for m in one_row}
            lines = one_row if len(sizes) >= MIN_LINE_SIZES else []
            points = [m for m in ms if m not in lines]
            what = f"{section.title}\n{dtype}, {threads_text(threads, section.backend)}"
            panels = []
            if lines:
                panels.append(Panel("lines", f"{what}: one row of n elements", lines))
            if points:
                label = "batched shapes" if lines else "each shape"
                panels.append(Panel("shapes", f"{what}: {label} (rows x columns)", points))
            rows.append((what, panels))
    return rows


def _machine_line(machine):
    native = machine.get("native") or {}
    isa = native.get("isa") if native.get("available") else "no native kernels"
    cpus = machine.get("cpus_usable")
    return f"{machine.get('cpu_model') or 'unknown CPU'}, {isa}, {cpus} usable CPUs"


def figure(report):
    """The matplotlib Figure of ``report``, or None when nothing can be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker
    from matplotlib.lines import Line2D

    rows = panel_rows(report.sections)
    if not rows:
        return None
    names = list(dict.fromkeys(m.implementation for _, panels in rows for p in panels
                               for m in p.measurements))
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}
    fig = plt.figure(figsize=(14, 4.6 * len(rows) + 0.8), layout="constrained")
    fig.suptitle("softmaxlib benchmark: effective bandwidth, higher is better\n"
                 f"on {_machine_line(report.machine)}; started {report.started}", fontsize=12)
    grid = fig.add_gridspec(len(rows), 5)
    for r, (_, panels) in enumerate(rows):
        if len(panels) == 2:
            axes = [fig.add_subplot(grid[r, :3]), fig.add_subplot(grid[r, 3:])]
        else:
            axes = [fig.add_subplot(grid[r, :])]
        kinds = {}
        for ax, panel in zip(axes, panels):
            for name in dict.fromkeys(m.implementation for m in panel.measurements):
                mine = [m for m in panel.measurements if m.implementation == name]
                kinds[name] = mine[0].kind
                _draw(ax, panel, mine, STYLE[mine[0].kind], colors[name])
            _axes_style(ax, panel, ticker)
            _enough_y_ticks(ax, ticker)
        handles = [Line2D([], [], color=colors[name], linestyle=STYLE[kind]["linestyle"],
                          linewidth=STYLE[kind]["linewidth"], marker=STYLE[kind]["marker"],
                          markerfacecolor=colors[name] if STYLE[kind]["fill"] else "white",
                          label=name)
                   for name, kind in sorted(kinds.items(), key=lambda item: _kind_order(item[1]))]
        axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                        fontsize=8, title=LEGEND_TITLE, title_fontsize=7, alignment="left")
    return fig


def _kind_order(kind):
    return {OURS: 0, PEER: 1, YARDSTICK: 2}[kind]


def _draw(ax, panel, ms, style, color):
    face = color if style["fill"] else "white"
    if panel.kind == "lines":
        points = sorted((m.size, m.gbs) for m in ms)
        ax.plot(*zip(*points), linestyle=style["linestyle"], linewidth=style["linewidth"],
                marker=style["marker"], markersize=4, color=color, markerfacecolor=face)
        return
    shapes = _shape_order(panel)
    for m in ms:
        ax.plot([shapes.index(tuple(m.shape))], [m.gbs], linestyle="none", marker=style["marker"],
                markersize=8, color=color, markerfacecolor=face, markeredgewidth=1.5)


def _shape_order(panel):
    return sorted({tuple(m.shape) for m in panel.measurements}, key=lambda s: (math.prod(s), s))


def _axes_style(ax, panel, ticker):
    ax.set_title(panel.title, fontsize=10)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylabel("effective GB/s\n(2 x nbytes / median time)")
    ax.grid(True, which="major", alpha=0.3)
    if panel.kind == "lines":
        ax.set_xscale("log", base=2)
        exponents = [int(round(math.log2(m.size))) for m in panel.measurements]
        low, high = min(exponents), max(exponents)
        step = max(1, math.ceil((high - low) / 8))
        ax.set_xticks([2.0**k for k in range(low, high + 1, step)])
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(
            lambda v, _: f"$2^{{{int(round(math.log2(v)))}}}$" if v > 0 else ""))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlabel("n, elements in the row (1 x n)")
    else:
        shapes = _shape_order(panel)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([_math_powers(format_shape(s)) for s in shapes],
                           rotation=20 if len(shapes) > 3 else 0)
        ax.set_xlim(-0.5, len(shapes) - 0.5)
        ax.set_xlabel("shape (rows x columns), softmax over each row")


def _math_powers(text):
    """"1x2^20" -> "1x$2^{20}$", as the line panels' ticks write powers of two."""
    return re.sub(r"2\^(\d+)", r"$2^{\1}$", text)


def _enough_y_ticks(ax, ticker):
    """Within less than a decade 1-2-5 gives too few labels: label every digit."""
    low, high = ax.get_ylim()
    shown = [t for t in ax.get_yticks() if low <= t <= high]
    if len(shown) < 3:
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=tuple(range(1, 10))))


def write_plot(report, path):
    """Draw the plot to ``path``; returns False when there is nothing to draw."""
    import os

    import matplotlib.pyplot as plt

    fig = figure(report)
    if fig is None:
        return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
