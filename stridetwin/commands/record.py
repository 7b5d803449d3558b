"""``stridetwin record --source SRC [--duration S] --out FILE``: record a driver's stream into a clip.

Ctrl-C stops the recording and finishes the clip with everything received so far.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "record",
        help="record sensors into a clip (crash-safe; Ctrl-C stops and keeps everything)",
        description="Sources: sim:PROFILE, serial:PORT?protocol=…&site=…, ble:ADDRESS?protocol=…&site=… "
        "(see the driver registry).",
    )
    parser.add_argument("--source", required=True, help="sensor source string, e.g. sim:hemiparetic")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="seconds (default: until Ctrl-C)")
    parser.add_argument("--out", required=True, metavar="FILE.stclip", help="clip to write (must not exist)")
    parser.add_argument("--pseudonym", default=None, help="patient pseudonym to store (never a name)")
    parser.add_argument(
        "--walkway-length-m",
        type=float,
        default=None,
        help="walkway length of the test (default: the simulated walkway for sim sources, else 20)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensor_drivers.errors import SensorDriverError
    from sensor_drivers.recording.recorder import record_until_interrupted
    from stridetwin.cli import CliError

    if args.duration is not None and args.duration <= 0:
        raise CliError(f"--duration must be positive, got {args.duration}")
    try:
        from sensor_drivers.drivers.registry import build_driver
    except ImportError as exc:
        raise CliError(f"no driver registry in this build ({exc})") from None
    try:
        driver = build_driver(args.source)
    except (SensorDriverError, ValueError) as exc:
        raise CliError(str(exc)) from None
    metadata: dict[str, object] = {"recording": {"source": args.source}}
    if args.pseudonym is not None:
        metadata["patient"] = {"pseudonym": args.pseudonym}
    walkway_m = args.walkway_length_m
    if walkway_m is None and not driver.clip_metadata().get("protocol"):
        walkway_m = 20.0  # the standard test; a simulated walk states its own
    if walkway_m is not None:
        metadata["protocol"] = {"walkway_length_m": walkway_m}
    try:
        result = record_until_interrupted(driver, args.out, duration_s=args.duration, metadata=metadata)
    except FileExistsError as exc:
        raise CliError(str(exc)) from None
    except SensorDriverError as exc:
        raise CliError(str(exc)) from None
    truth_note = save_truth(driver, result.path)
    total = sum(result.n_samples.values())
    how = {"stopped": "stopped by Ctrl-C", "duration": "duration reached", "stream ended": "source ended"}.get(
        result.stopped_by, result.stopped_by
    )
    print(f"wrote {result.path}: {total} samples, {len(result.n_samples)} sensor(s), {result.duration_s:.1f} s ({how})")
    for sid, n in result.n_samples.items():
        print(f"  {sid}: {n} samples")
    if truth_note:
        print(truth_note)
    if result.n_link_events:
        print(f"  {result.n_link_events} link event(s) (disconnects, gaps): see `stridetwin inspect {result.path}`")
    return 0


def save_truth(driver: object, clip_path: object) -> str:
    """A simulated source's ground truth, written beside the clip; returns a line to print ('' for real sensors)."""
    from sensor_drivers.sim.clip_export import truth_path_for
    from sensor_drivers.sim.source import SimDriver

    if not isinstance(driver, SimDriver) or driver.recording is None:
        return ""
    truth_npz, _ = driver.recording.truth.save(truth_path_for(clip_path))  # type: ignore[arg-type]
    return f"  ground truth of the virtual patient: {truth_npz} (+ .json)"
