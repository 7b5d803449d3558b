"""``stridetwin upload [FILE ...] [--tasks slope,stairs --budget quick]``: queue clips in the outbox and send it.

Each FILE is checked first (finished, undamaged, no identifying data: ``capture_app.link.deid``), copied into the
local library if it is not there, and queued with the job to submit after it (when ``--tasks`` is given). Then the
outbox is sent until these clips are confirmed by the trainer (SHA-256) and their jobs accepted, with progress; an
interrupted run (Ctrl-C, lost network, a crash) leaves them queued, and the next ``stridetwin upload`` (or the app)
resumes from the bytes the trainer holds. Without FILE, everything queued is sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from typing import Any

from stridetwin.commands._link import add_link_arguments, client_factory, data_dir_of, mib


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload",
        help="queue clips in the outbox and send them to the trainer (resumable, with retries)",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="clip files (.stclip); none: send what is queued")
    parser.add_argument("--tasks", default=None, metavar="LIST",
                        help="submit a training job for each clip after its upload: slope, stairs or slope,stairs")
    parser.add_argument("--budget", default="quick", choices=("smoke", "quick", "full"),
                        help="compute budget of the job (default quick)")  # fmt: skip
    parser.add_argument("--method", default="hybrid", choices=("hybrid", "physics-only"), help="default hybrid")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the job (default 0)")
    parser.add_argument("--queue-only", action="store_true", help="only queue; send later (the app, or `upload`)")
    parser.add_argument("--again", action="store_true",
                        help="queue a clip even if it was sent with the same job before (submits another job)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="without FILE: put clips that failed for good back in the queue first")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="give up waiting after S seconds (the clips stay queued)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the stridetwin.upload/1 JSON document at the end")
    add_link_arguments(parser)
    parser.set_defaults(func=run)


def _job_request(args: argparse.Namespace) -> Any:
    from capture_app.link.outbox import JobRequest
    from stridetwin.cli import CliError

    if args.tasks is None:
        return None
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    try:
        return JobRequest(tasks, args.budget, args.method, args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None


class _Printer:
    """Progress lines on stderr (stdout stays for results and JSON)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._started: dict[str, tuple[float, int]] = {}

    def __call__(self, event: Any) -> None:
        if self.quiet and event.kind not in ("failed",):
            return
        if event.kind == "upload":
            self._started[event.entry_id] = (time.monotonic(), event.offset_bytes)
            line = event.message + (" (resumed)" if event.offset_bytes else "")
        elif event.kind == "progress":
            t0, b0 = self._started.get(event.entry_id, (time.monotonic(), event.offset_bytes))
            dt = time.monotonic() - t0
            rate = (event.bytes_done - b0) / dt / 2**20 if dt > 0 else 0.0
            pct = 100 * event.bytes_done / max(1, event.size_bytes)
            line = f"  {mib(event.bytes_done)} of {mib(event.size_bytes)} ({pct:.0f} %), {rate:.1f} MiB/s"
        elif event.kind == "uploaded":
            line = event.message + (" (the trainer already held it)" if event.deduplicated else "")
        elif event.kind == "retry":
            line = f"  {event.error}\n  retrying in {event.delay_s:.1f} s"
        elif event.kind == "failed":
            line = f"FAILED: {event.error}"
        elif event.kind == "submitted":
            line = event.message
        else:
            return
        print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from capture_app.link.deid import check_clip_for_upload
    from capture_app.link.errors import ClipRefusedError, LinkError, TrainerRefusedError
    from capture_app.link.outbox import Outbox
    from capture_app.link.patients import PatientList
    from capture_app.link.sender import OutboxSender, send_until_done
    from stridetwin.cli import CliError

    job = _job_request(args)
    data_dir = data_dir_of(args)
    outbox = Outbox(data_dir)
    patients_path = data_dir / "patients.sqlite3"
    patients = PatientList(patients_path) if patients_path.exists() else None
    entries = []
    already = []
    for file in args.files:
        try:
            facts = check_clip_for_upload(file, patients)
        except ClipRefusedError as exc:
            raise CliError(str(exc)) from None
        prior = outbox.sent_matching(facts.sha256, job)
        if prior is not None and not args.again:
            job_note = f", job {prior.job_id}" if prior.job_id else ""
            print(f"{file}: already confirmed as clip {prior.clip_id}{job_note} "
                  f"({datetime.fromtimestamp(prior.done_unix_s):%Y-%m-%d %H:%M}); nothing sent (--again submits "
                  "another job)", file=sys.stderr)  # fmt: skip
            already.append(prior)
            continue
        try:
            entry = outbox.enqueue(file, job, patients, facts=facts)
        except ClipRefusedError as exc:
            raise CliError(str(exc)) from None
        entries.append(entry)
        if not args.json:
            what = f", then a {job.budget} job for {'+'.join(job.tasks)}" if job else " (no job: pass --tasks to train)"
            print(f"queued {entry.clip_path.name} ({mib(entry.size_bytes)}, pseudonym {entry.pseudonym or '-'})"
                  f"{what}", file=sys.stderr, flush=True)  # fmt: skip
    if args.files and not entries:
        return _finish(args, outbox, [], None, already)
    if not args.files:
        if args.retry_failed:
            outbox.retry()
        entries = outbox.entries(("upload", "submit"))
    if args.queue_only:
        return _finish(args, outbox, entries, None, already)
    sender = OutboxSender(outbox, client_factory(args), on_event=_Printer(quiet=args.json))
    try:
        if entries:
            report = send_until_done(sender, [e.entry_id for e in entries], timeout_s=args.timeout)
        else:
            report = sender.run(timeout_s=args.timeout)
    except TrainerRefusedError as exc:
        raise CliError(f"{exc}; the clips stay queued") from None
    except LinkError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        print("interrupted: the clips stay queued; `stridetwin upload` resumes where this stopped", file=sys.stderr)
        return 130
    return _finish(args, outbox, entries, report, already)


def _finish(args: argparse.Namespace, outbox: Any, entries: list, report: Any, already: list) -> int:
    rows = []
    for entry in [*already, *entries]:
        sent = outbox.sent(entry_id=entry.entry_id)
        still = outbox.get(entry.entry_id)
        if sent:
            r = sent[0]
            rows.append({"file": str(r.clip_path), "sha256": r.sha256, "state": "sent", "clip_id": r.clip_id,
                         "job_id": r.job_id, "error": None})  # fmt: skip
        elif still is not None:
            rows.append({"file": str(still.clip_path), "sha256": still.sha256, "state": still.state,
                         "clip_id": still.clip_id, "job_id": None, "error": still.last_error or None})  # fmt: skip
    if args.json:
        doc = {"schema": "stridetwin.upload/1", "clips": rows,
               "ended": report.ended if report else "queued", "bytes_sent": report.bytes_sent if report else 0}
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        for row in rows:
            if row["state"] == "sent":
                job = f", job {row['job_id']}" if row["job_id"] else ""
                print(f"{row['file']}: confirmed as clip {row['clip_id']}{job}")
            elif row["state"] == "failed":
                print(f"{row['file']}: FAILED ({row['error']}); once fixed, `stridetwin upload --retry-failed`")
            else:
                print(f"{row['file']}: still queued ({row['state']}){': ' + row['error'] if row['error'] else ''}")
    if any(r["state"] == "failed" for r in rows):
        return 1
    if report is not None and report.ended == "timeout" and any(r["state"] != "sent" for r in rows):
        return 3
    return 0
