"""The printed report, every line at most ``WIDTH`` columns.

In reading order: the machine; the verdict (softmaxlib against the fastest peer per
size class) and every shape where a peer is faster; the flags (what looks wrong);
then per section its notes, its tables (time, bandwidth, and one meaning per ratio
table) and its acceptance checks; last, the checks' summary, naming each failure.
"""

import textwrap

from softmaxlib._bench.flags import AUTO_TOLERANCE, all_flags, threads_text
from softmaxlib._bench.harness import format_seconds
from softmaxlib._bench.machine import describe
from softmaxlib._bench.options import format_shape
from softmaxlib._bench.results import OURS, PEER, TRAFFIC_MODEL, YARDSTICK
from softmaxlib._bench.verdict import (
    SizeClasses, format_bytes, geomean, peer_faster, verdict_rows,
)

#: Widest line of the report, in columns.
WIDTH = 100
RULE = "=" * WIDTH
#: A wrapped table column keeps at least this many columns.
MIN_WRAP = 14


def wrap(text, indent="", subsequent=None, width=WIDTH):
    """``text`` wrapped to ``width``; its own newlines are kept."""
    subsequent = indent if subsequent is None else subsequent
    lines = []
    for i, paragraph in enumerate(str(text).split("\n")):
        lines += textwrap.wrap(paragraph, width, initial_indent=indent if i == 0 else subsequent,
                               subsequent_indent=subsequent, break_long_words=True,
                               break_on_hyphens=False) or [""]
    return "\n".join(lines)


def _render_table(headers, rows, left, limits):
    """Rows of cells (strings, possibly wrapped to ``limits[i]`` columns) as text lines."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    split = []
    for row in cells:
        split.append([textwrap.wrap(c, limits[i], break_on_hyphens=False) or [""]
                      if i in limits and len(c) > limits[i] else [c] for i, c in enumerate(row)])
    widths = [max(len(line) for row in split for line in row[i]) for i in range(len(headers))]

    def lines(row):
        height = max(len(c) for c in row)
        for k in range(height):
            parts = [(c[k] if k < len(c) else "") for c in row]
            yield "  ".join(p.ljust(w) if i in left else p.rjust(w)
                            for i, (p, w) in enumerate(zip(parts, widths))).rstrip()

    out = list(lines(split[0])) + ["  ".join("-" * w for w in widths)]
    for row in split[1:]:
        out += lines(row)
    return out


def table(headers, rows, left=(0,), wrap_columns=(), width=WIDTH):
    """A text table at most ``width`` columns wide.

    Columns are right-aligned except those in ``left``. When too wide, the cells of
    ``wrap_columns`` are wrapped onto several lines; if that is not enough, the
    columns are split over several tables, each repeating the first column.
    """
    limits = {}
    text = _render_table(headers, rows, left, limits)
    # Narrow the wrap columns in the order given, each down to MIN_WRAP columns.
    for i in wrap_columns:
        natural = max(len(str(c)) for c in [headers[i], *(r[i] for r in rows)])
        limits[i] = natural
        while max(map(len, text)) > width and limits[i] > MIN_WRAP:
            limits[i] -= 1
            text = _render_table(headers, rows, left, limits)
    if max(map(len, text)) <= width or len(headers) <= 2:
        return "\n".join(text)
    # Split the columns: as many as fit beside the first one, then the rest.
    chunks, current = [], [0]
    for i in range(1, len(headers)):
        trial = current + [i]
        lines = _render_table([headers[j] for j in trial], [[r[j] for j in trial] for r in rows],
                              [k for k, j in enumerate(trial) if j in left], {})
        if max(map(len, lines)) > width and len(current) > 1:
            chunks.append(current)
            current = [0, i]
        else:
            current = trial
    chunks.append(current)
    return "\n\n".join(
        "\n".join(_render_table([headers[j] for j in c], [[r[j] for j in c] for r in rows],
                                [k for k, j in enumerate(c) if j in left], {}))
        for c in chunks)


def _fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}g}"


def _shapes_text(shapes):
    """One-row shapes as a range when there are many; batched shapes each by name."""
    rows = [format_shape(c.shape) for c in shapes if c.shape[0] == 1]
    if len(rows) > 3:
        rows = [f"{rows[0]} .. {rows[-1]} ({len(rows)} sizes)"]
    return ", ".join(rows + [format_shape(c.shape) for c in shapes if c.shape[0] != 1])


def _group_title(section, dtype, threads, backend):
    return f"{section} -- {dtype}, {threads_text(threads, backend)}"


# ------------------------------------------------------------------ verdict


def render_verdict(report):
    rows = verdict_rows(report.sections, report.machine)
    classes = SizeClasses.of(report.machine)
    parts = [
        "VERDICT: softmaxlib's fastest algorithm against the fastest installed peer",
        wrap("peer/ours is the peer's time over ours: above 1, softmaxlib is faster. ours/copy "
             "is our time over a memory copy of the same array: 1 is memory speed. Where a row "
             "holds several shapes, its times and ratios are geometric means. Size classes: "
             f"small, x fits the L1 data cache ({format_bytes(classes.l1d)}); in cache, x and "
             f"its result fit the L2 cache ({format_bytes(classes.l2)}); out of cache, "
             "larger.", "  "),
    ]
    if not rows:
        parts.append("\n  (nothing measured in the sweep sections)")
        return "\n".join(parts)
    groups = {}
    for r in rows:
        groups.setdefault((r.section, r.dtype, r.threads, r.backend), []).append(r)
    for (section, dtype, threads, backend), group in groups.items():
        parts.append("\n" + _group_title(section, dtype, threads, backend))
        body = []
        for r in group:
            ratios = r.ratios
            body.append([
                r.size_class.split(" (")[0], r.outcome,
                _fmt(geomean(ratios)) if ratios else "-", format_seconds(r.ours_s),
                format_seconds(r.peer_s), ", ".join(r.peer_names) or "-", _fmt(r.vs_copy),
                _shapes_text(r.shapes)])
        parts.append(table(
            ["size class", "softmaxlib", "peer/ours", "ours", "peer", "fastest peer",
             "ours/copy", "shapes"], body, left=(0, 1, 5, 7), wrap_columns=(7, 5)))
    parts.append("\n" + render_peer_faster(report))
    return "\n".join(parts)


def render_peer_faster(report):
    places = peer_faster(report.sections)
    if not places:
        has_peers = any(r.outcome != "no peer"
                        for r in verdict_rows(report.sections, report.machine))
        return ("Where a peer is faster: nowhere in this run." if has_peers else
                "Where a peer is faster: no peer was measured (--no-peers, or none installed).")
    lines = [f"Where a peer is faster ({len(places)} of the shapes above):"]
    sections = list(dict.fromkeys(c.section for c in places))
    places = sorted(places, key=lambda c: (sections.index(c.section), c.dtype,
                                           c.threads is None, c.threads or 0, c.nbytes, c.shape))
    for section in sections:
        lines.append(f"  {section}")
        for c in (c for c in places if c.section == section):
            ours = c.ours.implementation
            ours = ours if ours.startswith("softmaxlib") else f"softmaxlib ({ours})"
            lines.append(wrap(
                f"{c.dtype}, {threads_text(c.threads, c.backend)}, {format_shape(c.shape)}: "
                f"{c.peer.implementation} {format_seconds(c.peer.median_s)}, "
                f"{ours} {format_seconds(c.ours.median_s)}: "
                f"{c.peer.implementation} is {1 / c.peer_over_ours:.2f}x faster", "  - ", "    "))
    return "\n".join(lines)


# ------------------------------------------------------------------ flags


def render_flags(report):
    flags = all_flags(report.sections)
    if not flags:
        return wrap(f"FLAGS: none. auto is within {AUTO_TOLERANCE:.2f}x of the best explicit "
                    "algorithm on every shape, no thread count made a call slower, and every "
                    "section ran.")
    things = "1 thing that looks" if len(flags) == 1 else f"{len(flags)} things that look"
    lines = [f"FLAGS: {things} wrong"]
    for f in flags:
        lines.append(wrap(f"[{f.kind}] {f.text}", "  ! ", "      "))
        lines.append(wrap(f"what to do: {f.advice}", "    ", "      "))
    return "\n".join(lines)


# ------------------------------------------------------------------ details


def _groups(measurements):
    """{(dtype, threads): {shape: {implementation: Measurement}}} preserving order."""
    groups = {}
    for m in measurements:
        threads = m.group_threads if m.group_threads is not None else m.threads
        by_shape = groups.setdefault((m.dtype, threads), {})
        by_shape.setdefault(tuple(m.shape), {})[m.implementation] = m
    return groups


def _table_if_any(title, headers, rows, out):
    """Append ``title`` and the table unless every value cell is empty."""
    if not any(cell not in ("-", "") for r in rows for cell in r[1:]):
        return
    out.append(title)
    out.append(table(headers, rows))


def measurement_tables(section):
    """Time, bandwidth and ratio tables of one section's measurements."""
    out = []
    for (dtype, threads), by_shape in _groups(section.measurements).items():
        kinds = {}
        for r in by_shape.values():
            for name, m in r.items():
                kinds.setdefault(name, m.kind)
        ours = [n for n in kinds if kinds[n] == OURS]
        peers = [n for n in kinds if kinds[n] == PEER]
        yardsticks = [n for n in kinds if kinds[n] == YARDSTICK]
        yardstick = yardsticks[0] if yardsticks else "the copy"
        shapes = [format_shape(s) for s in by_shape]
        rows = list(by_shape.values())
        out.append("\n" + _group_title(section.title, dtype, threads, section.backend))
        own = sorted({(name, m.threads) for r in rows for name, m in r.items()
                      if m.group_threads is not None and m.threads != threads})
        if own:
            by_threads = {}
            for name, t in own:
                by_threads.setdefault(t, []).append(name)
            out.append(wrap("on their own threads: " + "; ".join(
                f"{', '.join(names)}: {threads_text(t, section.backend)}"
                for t, names in by_threads.items()), "  "))

        def cells(columns, value):
            return [[shape] + [value(r[c]) if c in r else "" for c in columns]
                    for shape, r in zip(shapes, rows)]

        def time_of(m):
            return format_seconds(m.median_s) if m.skipped is None else "skipped"

        _table_if_any("median time per call: softmaxlib" + (f", and the yardstick {yardstick}"
                                                          if yardsticks else ""),
                      ["shape"] + ours + yardsticks, cells(ours + yardsticks, time_of), out)
        if peers:
            _table_if_any("median time per call: peers", ["shape"] + peers,
                          cells(peers, time_of), out)
        columns = ours + peers + yardsticks
        _table_if_any("effective bandwidth, GB/s (2 x nbytes / time; higher is better)",
                      ["shape"] + columns, cells(columns, lambda m: _fmt(m.gbs)), out)
        _table_if_any(f"ours / {yardstick}: time ratio (1 = memory speed; lower is better)",
                      ["shape"] + ours, cells(ours, lambda m: _fmt(m.vs_copy)), out)
        reference = section.ratio_reference or "ours"
        if peers:
            _table_if_any(f"peer / {reference}: time ratio (above 1: softmaxlib is faster)",
                          ["shape"] + peers, cells(peers, lambda m: _fmt(m.peer_over_ours)), out)
        skipped = sorted({f"{m.implementation}: {m.skipped}" for r in rows for m in r.values()
                          if m.skipped})
        out += [wrap(f"skipped {s}", "  ", "    ") for s in skipped]
    return "\n".join(out)


def checks_table(bars):
    rows, notes = [], []
    for b in bars:
        bound = (">= " if b.at_least else "<= ") + f"{b.required:g}"
        rows.append([b.description, _fmt(b.measured), bound, _fmt(b.ceiling), b.status])
        if b.note:
            notes.append(wrap(f"{b.description}: {b.note}", "  note: ", "    "))
    text = table(["acceptance check", "measured", "required", "ceiling", "status"], rows,
                 left=(0, 4), wrap_columns=(0,))
    return "\n".join([text, *notes])


def checks_summary(bars):
    passed = [b for b in bars if b.status == "PASS"]
    unmeasured = [b for b in bars if b.status == "N/A"]
    failed = [b for b in bars if b.status.startswith("FAIL")]
    head = f"ACCEPTANCE CHECKS: {len(passed)} of {len(bars)} pass"
    if failed:
        head += f", {len(failed)} fail"
    if unmeasured:
        head += f", {len(unmeasured)} not measured"
    lines = [head]
    for b in failed:
        bound = (">=" if b.at_least else "<=") + f" {b.required:g}"
        if b.reachable is False:
            why = f"out of reach here: a memory copy in our place would get {_fmt(b.ceiling)}"
        elif b.reachable:
            why = f"missed; a memory copy in our place would get {_fmt(b.ceiling)}"
        else:
            why = "missed"
        lines.append(wrap(f"FAIL {b.description}: {_fmt(b.measured)}, needs {bound} ({why})",
                          "  - ", "    "))
    for b in unmeasured:
        lines.append(wrap(f"N/A {b.description}: {b.note or 'not measured'}", "  - ", "    "))
    if any(b.ceiling is not None for b in bars):
        lines.append(wrap("ceiling: the ratio a memory copy gets in our place (peer time / "
                          "copy time); no implementation beats it on this machine", "  "))
    return "\n".join(lines)


def render(report):
    """The whole printed report from ``run_benchmark``'s result."""
    parts = ["softmaxlib benchmark report", "",
             "\n".join(wrap(line, "", " " * 11) for line in describe(report.machine).split("\n")),
             "", render_verdict(report), "", render_flags(report), "",
             wrap(f"Details. Timings: the median of repeated calls after a warm-up; "
                  f"{TRAFFIC_MODEL}.")]
    all_bars = []
    for section in report.sections:
        parts.append("\n" + RULE + "\n" + section.title + "\n" + RULE)
        parts += [wrap(f"note: {n}", "", "      ") for n in section.notes]
        parts += [wrap(f"FAILED: {f.what} (see FLAGS)", "", "  ") for f in section.failures]
        if section.measurements and section.show_tables:
            parts.append(measurement_tables(section))
        if section.bars:
            parts.append("\n" + checks_table(section.bars))
            all_bars += section.bars
    if all_bars:
        parts.append("\n" + checks_summary(all_bars))
    parts.append(f"\ntotal time {report.elapsed_s:.1f} s")
    return "\n".join(parts)
