"""Accuracy plots: softmax error against row length and against logit scale.

Run at every docs build (from ``conf.py``), or by hand with
``python docs/_scripts/accuracy.py OUTDIR``.  Each method computes softmax of the same
float32 rows; the error of an element is measured against a float64 computation of
the same float32 inputs (exact to ~1e-16, far below float32's 6e-8):
relative where the exact value is a normal float32 number, absolute (in units of the
smallest normal number) below that.  A point is the largest error over the row(s).

The peers are imported if installed and left out of the plot otherwise.  Sizes are
kept small enough for the whole script to run in well under a minute on two cores.
"""

import json
import sys
import time
import warnings

import numpy as np

import softmaxlib

TINY = float(np.finfo(np.float32).tiny)
FLOOR = 1e-10  # the plots' lowest error
SEED = 20180402  # fixed: the plot is the same at every build on the same code

LENGTHS = [2**k for k in range(4, 21, 2)]  # 16 .. 1,048,576
SCALE_LENGTH = 4096
SCALES = [float(s) for s in np.logspace(-2, 37, 40)]  # standard deviation of the logits


def _hand_written(x):
    """What users write by hand: the "safe" softmax in NumPy, in the input dtype."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def methods():
    """name -> (callable float32 ndarray -> float32 ndarray, is_ours)."""
    found = {}
    for algorithm in softmaxlib.ALGORITHMS[1:]:
        found[f"softmaxlib {algorithm}"] = (
            lambda x, a=algorithm: softmaxlib.softmax(x, algorithm=a),
            True,
        )
    try:
        import scipy.special

        found["scipy.special.softmax"] = (lambda x: scipy.special.softmax(x, axis=-1), False)
    except ImportError:
        pass
    try:
        import torch

        found["torch.softmax"] = (lambda x: torch.softmax(torch.from_numpy(x), -1).numpy(), False)
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        jax_softmax = jax.jit(jax.nn.softmax)
        found["jax.nn.softmax"] = (lambda x: np.asarray(jax_softmax(jnp.asarray(x))), False)
    except ImportError:
        pass
    found["hand-written NumPy"] = (_hand_written, False)
    return found


def _exact(x):
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def max_error(y, exact):
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        return float("nan")
    normal = exact >= TINY
    rel = np.abs(y - exact)[normal] / exact[normal]
    absolute = np.abs(y - exact)[~normal] / TINY
    return float(max(rel.max(initial=0.0), absolute.max(initial=0.0)))


def measure():
    rng = np.random.default_rng(SEED)
    found = methods()
    by_length = {name: [] for name in found}
    for n in LENGTHS:
        x = rng.normal(0.0, 3.0, size=n).astype(np.float32)
        exact = _exact(x)
        for name, (f, _) in found.items():
            by_length[name].append(max_error(f(x), exact))
    by_scale = {name: [] for name in found}
    for s in SCALES:
        x = (rng.standard_normal((4, SCALE_LENGTH)) * s).astype(np.float32)
        exact = _exact(x)
        for name, (f, _) in found.items():
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                by_scale[name].append(max_error(f(x), exact))
    ours = {name for name, (_, is_ours) in found.items() if is_ours}
    return {"by_length": by_length, "by_scale": by_scale, "ours": sorted(ours)}


def _plot(ax, xs, series, ours, xlabel):
    for name, errors in series.items():
        errors = np.asarray(errors, dtype=float)
        # Errors below the floor (most often exactly 0) are drawn on it, not dropped.
        errors = np.maximum(errors, FLOOR)
        style = {"linewidth": 2.0, "marker": "o"} if name in ours else {"linestyle": "--", "marker": "s", "alpha": 0.8}
        ax.plot(xs, errors, label=name, markersize=4, **style)
    ax.axhline(1e-6, color="black", linewidth=0.8, linestyle=":")
    ax.annotate("1e-6", xy=(xs[0], 1.15e-6), fontsize=8)
    ax.set_xscale("log", base=2 if xlabel.startswith("row") else 10)
    ax.set_yscale("log")
    ax.set_ylim(FLOOR / 2, None)
    ax.annotate("≤ 1e-10 (or exact)", xy=(xs[-1], FLOOR * 1.3), fontsize=8, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("max error per element (relative)")
    ax.grid(True, which="major", alpha=0.3)


def write(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    data = measure()
    ours = set(data["ours"])

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    _plot(ax, LENGTHS, data["by_length"], ours, "row length n (float32 logits ~ N(0, 3))")
    ax.set_title("softmax error against row length, float32")
    ax.legend(fontsize=8, ncols=2)
    fig.savefig(out / "accuracy_length.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    _plot(ax, SCALES, data["by_scale"], ours, f"logit scale s (float32 logits ~ N(0, s), rows of {SCALE_LENGTH})")
    ax.set_title("softmax error against logit scale, float32")
    ax.legend(fontsize=8, ncols=2)
    fig.savefig(out / "accuracy_scale.png", dpi=110)
    plt.close(fig)

    data["lengths"] = LENGTHS
    data["scales"] = SCALES
    data["seconds"] = round(time.perf_counter() - start, 2)
    (out / "accuracy.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    (out / "accuracy_table.md").write_text(_table(data), encoding="utf-8")
    return data


def _fmt(e):
    return "overflow / NaN" if np.isnan(e) else f"{e:.1e}"


def _table(data):
    names = list(data["by_length"])
    lines = ["| method | worst over row lengths | worst over logit scales |", "|---|---|---|"]
    for name in names:
        worst_n = np.nanmax(data["by_length"][name]) if not np.all(np.isnan(data["by_length"][name])) else np.nan
        scale_errors = np.asarray(data["by_scale"][name])
        worst_s = "overflow / NaN" if np.any(np.isnan(scale_errors)) else _fmt(scale_errors.max())
        label = f"**{name}**" if name in data["ours"] else name
        lines.append(f"| {label} | {_fmt(worst_n)} | {worst_s} |")
    lines.append("")
    lines.append(f"Measured in {data['seconds']} s when these docs were built.")
    return "\n".join(lines) + "\n"


def write_placeholder(out):
    """For quick local builds (``-D softmaxlib_skip_accuracy=1``): no plots."""
    from matplotlib import pyplot as plt

    for name in ("accuracy_length.png", "accuracy_scale.png"):
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "skipped in this build", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(out / name)
        plt.close(fig)
    (out / "accuracy_table.md").write_text("*(accuracy measurement skipped in this build)*\n", encoding="utf-8")


if __name__ == "__main__":
    import pathlib

    target = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    target.mkdir(parents=True, exist_ok=True)
    result = write(target)
    print(_table(result))
