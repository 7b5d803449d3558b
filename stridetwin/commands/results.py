"""``stridetwin results fetch JOB`` / ``stridetwin results list``: the results library (offline playback).

``fetch`` downloads the artifacts of a succeeded job (ONNX policies with their manifests, videos, angles, report),
resuming what an earlier fetch left, verifies each SHA-256 (a damaged file is downloaded again) and stores them next
to the job's clip in the local library (docs/link.md, "On disk"). ``list`` shows what the library holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stridetwin.commands._link import add_link_arguments, client_factory, data_dir_of, mib


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results", help="fetch and list the results of training jobs", description=__doc__.split("\n\n", 1)[1]
    )
    sub = parser.add_subparsers(dest="results_command", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="download and verify a job's artifacts into the results library")
    fetch.add_argument("job_id", metavar="JOB")
    fetch.add_argument("--json", action="store_true", help="print the stridetwin.results/1 document of the job")
    add_link_arguments(fetch)
    fetch.set_defaults(func=run_fetch)
    listing = sub.add_parser("list", help="results held locally")
    listing.add_argument("--verify", action="store_true", help="re-hash every file and report damaged ones")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help="the app's data directory")
    listing.set_defaults(func=run_list)


def _doc(result: Any) -> dict[str, Any]:
    return {
        "schema": "stridetwin.results/1", "job_id": result.job_id, "complete": result.complete,
        "state": result.state, "clip_id": result.clip_id,
        "clip_path": str(result.clip_path) if result.clip_path else None, "directory": str(result.directory),
        "artifacts": [{**asdict(a), "path": str(result.path_of(a.name))} for a in result.artifacts],
        "damaged": list(result.damaged), "report": result.report, "fetched_utc": result.fetched_utc,
    }  # fmt: skip


def run_fetch(args: argparse.Namespace) -> int:
    from capture_app.link.errors import LinkError
    from capture_app.link.results import ResultsLibrary
    from stridetwin.cli import CliError

    library = ResultsLibrary(data_dir_of(args))

    def show(p: Any) -> None:
        if args.json:
            return
        if p.kind == "verified":
            print(f"  {p.name}: {mib(p.size_bytes)} verified" + (f" ({p.message})" if p.message else ""),
                  file=sys.stderr, flush=True)  # fmt: skip
        elif p.kind in ("corrupt", "retry"):
            print(f"  {p.name}: {p.message}", file=sys.stderr, flush=True)
        elif p.resumed_from_bytes and p.bytes_done == p.resumed_from_bytes:
            print(f"  {p.name}: resuming at {mib(p.bytes_done)} of {mib(p.size_bytes)}", file=sys.stderr, flush=True)

    try:
        with client_factory(args)() as client:
            result = library.fetch(client, args.job_id, on_progress=show)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except LinkError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        json.dump(_doc(result), sys.stdout, indent=2)
        print()
        return 0
    total = sum(a.size_bytes for a in result.artifacts)
    print(f"job {result.job_id}: {len(result.artifacts)} artifacts ({mib(total)}) verified in {result.directory}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from capture_app.link.paths import default_data_dir
    from capture_app.link.results import ResultsLibrary

    library = ResultsLibrary(args.data_dir or default_data_dir())
    results = [library.get(r.job_id, verify=True) if args.verify else r for r in library.list()]
    if args.json:
        json.dump({"schema": "stridetwin.results-list/1", "results": [_doc(r) for r in results if r]}, sys.stdout,
                  indent=2)  # fmt: skip
        print()
        return 0
    if not results:
        print("no results in the library")
    for r in results:
        if r is None:
            continue
        state = "complete" if r.complete else ("DAMAGED: " + ", ".join(r.damaged) if r.damaged else "incomplete")
        clip = r.clip_path.name if r.clip_path else f"clip {r.clip_id[:12]}…"
        print(f"{r.job_id}  {state}  {len(r.artifacts)} artifacts  {clip}  {r.directory}")
    return 0 if all(r is None or not r.damaged for r in results) else 1
