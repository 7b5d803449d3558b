"""``stridetwin jobs [JOB ...] [--watch]``: the clinic's training jobs, and their progress as it happens.

Without ``--watch``: one line per job on the trainer (newest first: state, tasks, budget, progress, the local clip
it was submitted for) and the clips still waiting in the outbox. With ``--watch``: the progress events of the named
jobs (default: every queued or running job) as the trainer sends them, until each has ended; a lost connection is
retried with backoff and the watch picks up from the job's current state.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import datetime
from typing import Any

from stridetwin.commands._link import add_link_arguments, client_factory, data_dir_of, duration, progress_line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "jobs", help="list training jobs; --watch streams their progress", description=__doc__.split("\n\n", 1)[1]
    )
    parser.add_argument("job_ids", nargs="*", metavar="JOB", help="only these jobs")
    parser.add_argument("--watch", action="store_true", help="stream progress events until the jobs have ended")
    parser.add_argument("--json", action="store_true",
                        help="print the stridetwin.jobs/1 JSON document (with --watch: one JSON event per line)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="stop watching after S seconds")
    add_link_arguments(parser)
    parser.set_defaults(func=run)


def _job_json(job: Any, clip_paths: dict[str, str]) -> dict[str, Any]:
    from dataclasses import asdict

    doc = asdict(job)
    doc["local_clip"] = clip_paths.get(job.job_id)
    return doc


def run(args: argparse.Namespace) -> int:
    from capture_app.link.errors import LinkError
    from capture_app.link.outbox import Outbox
    from stridetwin.cli import CliError

    make_client = client_factory(args)
    outbox = Outbox(data_dir_of(args))
    clip_paths = {r.job_id: str(r.clip_path) for r in outbox.sent() if r.job_id}
    try:
        with make_client() as client:
            jobs = [client.get_job(j) for j in args.job_ids] if args.job_ids else client.list_jobs()
    except LinkError as exc:
        raise CliError(str(exc)) from None
    if args.watch:
        targets = [j.job_id for j in jobs if args.job_ids or not j.ended]
        if not targets:
            print("no queued or running job to watch", file=sys.stderr)
            return 0
        return _watch(make_client, targets, args.json, args.timeout)
    waiting = outbox.entries()
    if args.json:
        doc = {
            "schema": "stridetwin.jobs/1",
            "jobs": [_job_json(j, clip_paths) for j in jobs],
            "outbox": [
                {"file": str(e.clip_path), "state": e.state, "sha256": e.sha256, "error": e.last_error or None,
                 "job": json.loads(e.job.to_json()) if e.job else None}
                for e in waiting
            ],
        }  # fmt: skip
        json.dump(doc, sys.stdout, indent=2)
        print()
        return 0
    if not jobs:
        print("no jobs on the trainer")
    for j in jobs:
        created = datetime.fromtimestamp(j.created_unix_s).strftime("%Y-%m-%d %H:%M")
        clip = clip_paths.get(j.job_id, f"clip {j.clip_id[:12]}…")
        state = j.state if not j.error_message else f"{j.state} ({j.error_message})"
        print(f"{j.job_id}  {created}  {state:9s}  {'+'.join(j.tasks)} {j.budget}  {clip}")
        if not j.ended and j.progress is not None:
            print(f"    {progress_line(j.progress)}")
    for e in waiting:
        what = f"{e.state}" + (f": {e.last_error}" if e.last_error else "")
        print(f"(outbox) {e.clip_path.name}  {what}")
    return 0


def _watch(make_client: Any, job_ids: list[str], as_json: bool, timeout_s: float | None) -> int:
    """One thread per job; each re-opens its stream with backoff after a transient failure."""
    from capture_app.link.backoff import Backoff
    from capture_app.link.errors import LinkError, TransientLinkError

    lock = threading.Lock()
    outcomes: dict[str, str] = {}
    stop = threading.Event()

    def emit(job_id: str, event: Any) -> None:
        with lock:
            if as_json:
                from dataclasses import asdict

                print(json.dumps({"job_id": job_id, **asdict(event)}), flush=True)
            elif event.kind == "job":
                print(f"{job_id}  {event.job.state}" + (f" (attempt {event.job.n_attempts})"
                      if event.job.n_attempts > 1 else ""), flush=True)  # fmt: skip
            elif event.kind == "progress":
                print(f"{job_id}  {progress_line(event.progress)}  [{duration(event.progress.elapsed_s)}]",
                      flush=True)  # fmt: skip
            else:
                r = event.result
                extra = f": {r.error_message}" if r.error_message else f", {len(r.artifacts)} artifacts"
                hint = f" (`stridetwin results fetch {job_id}`)" if r.state == "succeeded" else ""
                print(f"{job_id}  ended {r.state}{extra}{hint}", flush=True)

    def watch(job_id: str) -> None:
        backoff = Backoff(initial_s=0.5, max_s=30.0)
        failures = 0
        client = make_client()
        try:
            while not stop.is_set():
                try:
                    for event in client.watch_job(job_id):
                        failures = 0
                        emit(job_id, event)
                        if event.kind == "result":
                            outcomes[job_id] = event.result.state
                            return
                    continue  # the trainer closed the stream (it is stopping): watch again
                except TransientLinkError as exc:
                    failures += 1
                    delay = backoff.delay_s(failures)
                    if not as_json:
                        with lock:
                            print(f"{job_id}  {exc}; watching again in {delay:.1f} s", file=sys.stderr, flush=True)
                    client.reset()
                    stop.wait(delay)
                except LinkError as exc:
                    outcomes[job_id] = f"error: {exc}"
                    with lock:
                        print(f"{job_id}  {exc}", file=sys.stderr, flush=True)
                    return
        finally:
            client.close()

    threads = [threading.Thread(target=watch, args=(j,), daemon=True) for j in job_ids]
    for t in threads:
        t.start()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
                if deadline is not None and time.monotonic() > deadline:
                    stop.set()
                    return 3
    except KeyboardInterrupt:
        stop.set()
        return 130
    return 0 if all(outcomes.get(j) == "succeeded" for j in job_ids) else 1
