"""``stridetwin demo``: the whole product, headless, on embedded defaults — no hardware, no configuration.

For now: a virtual hemiparetic patient walks the 20 m test; its five sensors are served over pseudo-terminals speaking
the StrideTwin serial protocol and read by the real serial drivers; the walk is recorded into a crash-safe clip with
the ground truth beside it, and the clip is inspected. The demo grows with the product (analysis, training, report).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEFAULT_SOURCE = "sim:hemiparetic?transport=serial&protocol=stridetwin"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end run on a virtual patient (no hardware, no configuration)",
        description="Simulate a hemiparetic patient's 20 m walk test over a virtual serial link, record it and inspect "
        "the recording. Runs in real time (about a minute).",
    )
    parser.add_argument("--out", default="out/demo", metavar="DIR", help="where to write the clip (default out/demo)")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"sensor source (default {DEFAULT_SOURCE})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensor_drivers.errors import SensorDriverError
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.recording.recorder import record_until_interrupted
    from sensor_drivers.recording.stats import inspect_clip
    from stridetwin.cli import CliError
    from stridetwin.commands.inspect import format_text
    from stridetwin.commands.record import save_truth

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip_path = out_dir / f"walk-{time.strftime('%Y%m%d-%H%M%S')}.stclip"
    try:
        from sensor_drivers.drivers.registry import build_driver

        driver = build_driver(args.source)
    except (SensorDriverError, ValueError) as exc:
        raise CliError(str(exc)) from None

    print(f"[1/2] recording {args.source} into {clip_path} (real time; Ctrl-C stops and keeps the clip)", flush=True)
    started = time.monotonic()
    try:
        result = record_until_interrupted(driver, clip_path, metadata={"recording": {"source": args.source}})
    except SensorDriverError as exc:
        raise CliError(str(exc)) from None
    n_samples = sum(result.n_samples.values())
    print(f"      {n_samples} samples from {len(result.n_samples)} sensors in {time.monotonic() - started:.1f} s")
    truth_note = save_truth(driver, clip_path)
    if truth_note:
        print(f"      {truth_note.strip()}")

    print("[2/2] inspection", flush=True)
    print(format_text(inspect_clip(read_clip(clip_path)).to_json()))
    return 0
