"""PNG plot: effective bandwidth against size, log-log, one line per implementation.

One panel per (section, dtype, thread count) that has at least two sizes. Only
one-row shapes (1 x n) form the lines; batched shapes are drawn as separate
markers so that they do not zigzag the curves.
"""

import importlib.util

from softmaxlib._bench.results import OURS, PEER


def matplotlib_available():
    return importlib.util.find_spec("matplotlib") is not None


def _panels(sections):
    panels = []
    for section in sections:
        if not section.show_tables:
            continue
        groups = {}
        for m in section.measurements:
            if m.gbs is None:
                continue
            threads = m.group_threads if m.group_threads is not None else m.threads
            groups.setdefault((m.dtype, threads), []).append(m)
        for (dtype, threads), ms in groups.items():
            if len({m.size for m in ms}) >= 2:
                threads_text = "default" if threads is None else threads
                panels.append((f"{section.title}\n{dtype}, threads: {threads_text}", ms))
    return panels


def write_plot(sections, path, machine_line=""):
    """Draw the plot to ``path``; returns False when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(sections)
    if not panels:
        return False
    ncols = min(2, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5 * ncols, 5 * nrows), squeeze=False)
    for ax, (title, ms) in zip(axes.flat, panels):
        names = list(dict.fromkeys(m.implementation for m in ms))
        for i, name in enumerate(names):
            mine = [m for m in ms if m.implementation == name]
            kind = mine[0].kind
            style = "-" if kind == OURS else "--" if kind == PEER else ":"
            color = f"C{i % 10}"
            line = sorted((m.size, m.gbs) for m in mine if m.shape[0] == 1)
            if line:
                ax.plot(*zip(*line), style, marker="o", markersize=3, color=color, label=name,
                        linewidth=2.2 if kind == OURS else 1.4)
            batched = [(m.size, m.gbs) for m in mine if m.shape[0] != 1]
            if batched:
                ax.plot(*zip(*batched), linestyle="none", marker="s", color=color,
                        label=None if line else name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("elements (lines: 1 x n; squares: batched shapes)")
        ax.set_ylabel("effective GB/s (2 x nbytes / median time)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if machine_line:
        fig.suptitle(machine_line, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
