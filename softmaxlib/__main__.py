"""Command line: ``python -m softmaxlib bench [options]`` (also the ``softmaxlib`` script).

``bench`` runs the benchmark report: progress on stderr, tables on stdout, the
results as JSON and, when matplotlib is installed, a PNG plot of throughput
against size. ``info`` states the machine and the native kernels in use.
"""

import argparse
import json
import sys

SIZES_HELP = ("comma-separated shapes: ROWSxCOLS or an element count for one row "
              "(1024, 2^20, 64K, 16M; K/M are binary)")


def _list_of(parse):
    def parse_list(text):
        from softmaxlib._bench.options import split_list

        try:
            return [parse(item) for item in split_list(text)]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse_list


def _choices(allowed):
    def parse(item):
        if item not in allowed:
            raise ValueError(f"{item!r} is not one of {', '.join(allowed)}")
        return item

    return parse


def _positive_int(text):
    n = int(text)
    if n < 1:
        raise ValueError(f"must be >= 1, got {n}")
    return n


def build_parser():
    from softmaxlib import ALGORITHMS
    from softmaxlib._bench.options import ALL_DTYPES, parse_shape
    from softmaxlib._bench.sections import SECTIONS

    parser = argparse.ArgumentParser(prog="softmaxlib",
                                     description="softmaxlib command line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench", help="run the benchmark report",
        description="Time softmaxlib's algorithms against installed peers and x.copy(); "
                    "print tables, write JSON and a PNG plot.")
    bench.add_argument("--quick", action="store_true",
                       help="a short run for a first look (well under a minute)")
    bench.add_argument("--sizes", type=_list_of(parse_shape), help=SIZES_HELP)
    bench.add_argument("--dtypes", type=_list_of(_choices(ALL_DTYPES)),
                       help=f"comma-separated, from {', '.join(ALL_DTYPES)} (default float32)")
    backends = sorted({s.backend for s in SECTIONS})
    bench.add_argument("--backends", type=_list_of(_choices(backends)),
                       help=f"sections to run, by backend: {', '.join(backends)} (default all)")
    bench.add_argument("--algorithms", type=_list_of(_choices(ALGORITHMS)),
                       help=f"comma-separated, from {', '.join(ALGORITHMS)} (default all)")
    bench.add_argument("--threads", type=_list_of(_positive_int),
                       help="comma-separated thread counts (default: 1 and the native default; "
                            "--quick: the native default)")
    bench.add_argument("--repeat", type=_positive_int,
                       help="most timed samples per case (at least 3 are taken)")
    bench.add_argument("--budget", type=float, metavar="SECONDS",
                       help="seconds of timed samples per case (default 0.3, --quick 0.05)")
    bench.add_argument("--out", metavar="DIR", default=None,
                       help="folder for the JSON results and the PNG plot (default "
                            "./softmaxlib-bench/; created if missing)")
    bench.add_argument("--json", metavar="FILE",
                       help="write the JSON results to FILE instead of --out's folder "
                            "('' to skip)")
    bench.add_argument("--plot", metavar="FILE",
                       help="write the PNG plot to FILE instead of --out's folder ('' to skip)")
    bench.add_argument("--no-peers", action="store_true",
                       help="time softmaxlib and x.copy() only")
    bench.add_argument("--quiet", action="store_true", help="no progress on stderr")
    commands.add_parser("info", help="the machine and the native kernels in use")
    return parser


def options_from(args):
    """``BenchOptions`` from parsed arguments: the defaults, overridden where given."""
    from softmaxlib._bench.options import BenchOptions

    options = BenchOptions.defaults(quick=args.quick)
    for name, value in (("shapes", args.sizes), ("dtypes", args.dtypes),
                        ("backends", args.backends), ("algorithms", args.algorithms),
                        ("threads", args.threads), ("repeat", args.repeat),
                        ("budget_s", args.budget)):
        if value is not None:
            setattr(options, name, value)
    options.peers = not args.no_peers
    return options


def output_paths(args, started):
    """(json_path, plot_path): an explicit --json/--plot wins, else a file in --out's
    folder; None where the user asked for none ('')."""
    from softmaxlib._bench import DEFAULT_OUT_DIR, default_path

    out_dir = args.out if args.out is not None else DEFAULT_OUT_DIR
    json_path = default_path("json", started, out_dir) if args.json is None else args.json
    plot_path = default_path("png", started, out_dir) if args.plot is None else args.plot
    return json_path or None, plot_path or None


def bench(args):
    import os

    from softmaxlib._bench import run_benchmark, write_json
    from softmaxlib._bench.plot import matplotlib_available, write_plot
    from softmaxlib._bench.report import render

    options = options_from(args)
    report = run_benchmark(options, progress_stream=None if args.quiet else sys.stderr)
    options.json_path, options.plot_path = output_paths(args, report.started)
    print(render(report))
    written = []
    if options.json_path:
        write_json(report, options.json_path)
        written.append(("JSON results", options.json_path))
    if options.plot_path:
        if not matplotlib_available():
            print("\nno plot: matplotlib is not installed (pip install matplotlib)")
        elif write_plot(report, options.plot_path):
            written.append(("PNG plot", options.plot_path))
        else:
            print("\nno plot: no section measured anything to draw")
    if written:
        print("\nfiles written:")
        for what, path in written:
            print(f"  {what + ':':14s}{os.path.abspath(path)}")
    return 0


def info(_args):
    from softmaxlib._bench.machine import describe, machine_info

    machine = machine_info()
    print(describe(machine))
    print(json.dumps(machine["native"], indent=1))
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench(args)
    if args.command == "info":
        return info(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
