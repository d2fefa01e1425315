"""The printed report: machine, then per section a time table, a bandwidth table,
a ratio table (per dtype and thread count), notes, and the bars."""

from softmaxlib._bench.harness import format_seconds
from softmaxlib._bench.machine import describe
from softmaxlib._bench.options import format_shape
from softmaxlib._bench.results import OURS, PEER, TRAFFIC_MODEL, YARDSTICK


def table(headers, rows, left=(0,)):
    """Text table: columns right-aligned except those whose index is in ``left``."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)]
                     + [line(r) for r in rows])


def _fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}g}"


def _groups(measurements):
    """{(dtype, threads): {shape: {implementation: Measurement}}} preserving order."""
    groups = {}
    for m in measurements:
        threads = m.group_threads if m.group_threads is not None else m.threads
        by_shape = groups.setdefault((m.dtype, threads), {})
        by_shape.setdefault(tuple(m.shape), {})[m.implementation] = m
    return groups


def _columns(by_shape):
    columns = {}
    for row in by_shape.values():
        for name, m in row.items():
            columns.setdefault(name, m.kind)
    order = {OURS: 0, PEER: 1, YARDSTICK: 2}
    return sorted(columns, key=lambda name: order[columns[name]])


def measurement_tables(section):
    """Time, bandwidth and ratio tables of one section's measurements."""
    out = []
    for (dtype, threads), by_shape in _groups(section.measurements).items():
        columns = _columns(by_shape)
        kinds = {name: next(r[name].kind for r in by_shape.values() if name in r)
                 for name in columns}
        shapes = [format_shape(s) for s in by_shape]
        rows = list(by_shape.values())
        threads_text = "library default" if threads is None else threads
        out.append(f"\n{section.title} -- {dtype}, threads: {threads_text}")
        out.append("median time per call")
        out.append(table(["shape"] + columns, [
            [shape] + [format_seconds(r[c].median_s) if c in r else "" for c in columns]
            for shape, r in zip(shapes, rows)]))
        out.append("effective bandwidth, GB/s (2 x nbytes / time)")
        out.append(table(["shape"] + columns, [
            [shape] + [_fmt(r[c].gbs) if c in r else "" for c in columns]
            for shape, r in zip(shapes, rows)]))
        reference = section.ratio_reference or "ours"
        yardstick = next((c for c in columns if kinds[c] == YARDSTICK), "copy")
        ratio_columns = [c for c in columns if kinds[c] != YARDSTICK]
        headers = ratio_columns
        out.append(f"ratios of times -- our columns: ours / {yardstick} (lower is better, "
                   f"1 = memory speed); peer columns: peer / {reference} (higher = ours faster)")
        out.append(table(["shape"] + headers, [
            [shape] + [_fmt(r[c].vs_copy if kinds[c] == OURS else r[c].peer_over_ours)
                       if c in r else "" for c in ratio_columns]
            for shape, r in zip(shapes, rows)]))
        skipped = sorted({f"{m.implementation}: {m.skipped}" for r in rows for m in r.values()
                          if m.skipped})
        out += [f"  skipped {s}" for s in skipped]
    return "\n".join(out)


def bars_table(bars):
    rows = []
    for b in bars:
        bound = (">= " if b.at_least else "<= ") + f"{b.required:g}"
        rows.append([b.issue, b.description, _fmt(b.measured), bound, _fmt(b.ceiling), b.status,
                     b.note or ""])
    return table(["issue", "bar", "measured", "required", "ceiling", "status", "note"], rows,
                 left=(0, 1, 5, 6))


def render(report):
    """The whole printed report from ``run_benchmark``'s result."""
    parts = ["softmaxlib benchmark report", "", describe(report.machine), "",
             f"Timings: median of repeated runs after a warm-up; {TRAFFIC_MODEL}."]
    all_bars = []
    for section in report.sections:
        parts.append("\n" + "=" * 78 + f"\n{section.title}\n" + "=" * 78)
        parts += [f"note: {n}" for n in section.notes]
        if section.measurements and section.show_tables:
            parts.append(measurement_tables(section))
        if section.bars:
            parts.append("\n" + bars_table(section.bars))
            all_bars += section.bars
    if all_bars:
        passed = sum(b.status == "PASS" for b in all_bars)
        out_of_reach = sum(b.reachable is False and b.status != "PASS" for b in all_bars)
        parts.append(f"\nbars: {passed} of {len(all_bars)} pass"
                     + (f", {out_of_reach} out of reach on this machine" if out_of_reach else ""))
        parts.append("ceiling: the ratio the yardstick itself gets in our place (peer time / "
                     "yardstick time); no implementation beats it here")
    parts.append(f"\ntotal time {report.elapsed_s:.1f} s")
    return "\n".join(parts)
