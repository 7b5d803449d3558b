"""``stridetwin bench [SUITE ...] [--json]``: run the benchmarks under ``bench/`` and print their figures."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

#: Benchmark suites by name → module under ``bench/``. Each module has ``run(quick: bool) -> dict``.
SUITES: dict[str, str] = {
    "capture": "bench.capture",
    "protocols": "bench.protocols",
    "timing": "bench.capture_timing",
    "recording": "bench.recording",
    "sim": "bench.sim",
    "ppo": "bench.ppo",
    "outputs": "bench.outputs",
    "pipeline": "bench.pipeline",
    "accuracy-gait": "bench.accuracy_gait",
    "analysis": "bench.analysis",
    "accuracy-angles": "bench.accuracy_angles",
    "accuracy-placement": "bench.accuracy_placement",
    "service": "bench.service",
    "link": "bench.link",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run performance benchmarks and print their figures")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"suites to run (default: all of {sorted(SUITES)})")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke-test the benchmarks, rough figures)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stridetwin.cli import CliError

    names = args.suites or sorted(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise CliError(f"unknown benchmark suite(s) {unknown}; available: {sorted(SUITES)}")
    results: dict[str, dict] = {}
    for name in names:
        module = importlib.import_module(SUITES[name])
        if not args.json:
            print(f"== {name}", flush=True)
        results[name] = module.run(quick=args.quick)
        if not args.json:
            for key, value in results[name].items():
                print(f"  {key}: {value}")
    if args.json:
        json.dump({"schema": "stridetwin.bench/1", "suites": results}, sys.stdout, indent=2)
        print()
    return 0
