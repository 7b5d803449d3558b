"""``stridetwin export csv|c3d FILE --out X``: write a clip's samples as the StrideTwin samples CSV, or the clip and
its analysis as C3D (raw IMU channels as analogs, joint angles as Plug-in Gait angle points, gait events)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a clip (csv: stridetwin.samples-csv/1 samples; c3d: IMU analogs, joint angles, gait events)",
        description="csv: one row per sample, all sensors, units in the column names (docs/clip-format.md). "
        "c3d: the clip analysed offline, written for gait-lab software (Mokka, Visual3D, Nexus): raw IMU channels as "
        "analog data, joint angles as Plug-in Gait angle points, foot strike / foot off events "
        "(docs/import-export.md, 'C3D').",
    )
    parser.add_argument("format", choices=("csv", "c3d"), help="output format")
    parser.add_argument("file", metavar="FILE", help="clip (.stclip)")
    parser.add_argument("--out", required=True, metavar="OUT", help="file to write (must not exist)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--relabel", action="store_true",
                        help="c3d: analyse the sensors on the sites the placement check identified")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensor_drivers.errors import RecordingFormatError
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.recording.csv_format import export_csv
    from stridetwin.cli import CliError

    try:
        clip = read_clip(args.file, allow_unfinished=args.format == "c3d")
        if args.format == "csv":
            n_rows = export_csv(clip, args.out, overwrite=args.force)
        else:
            from capture_app.core.session.analysis import WalkAnalysis
            from capture_app.core.session.c3d import export_c3d

            analysis = WalkAnalysis(apply_relabelling=args.relabel).analyze(clip)
            summary = export_c3d(analysis, clip, args.out, overwrite=args.force)
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: no such file") from None
    except FileExistsError:
        raise CliError(f"{args.out} already exists (pass --force to overwrite)") from None
    except (RecordingFormatError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.format == "csv":
        print(f"wrote {args.out}: {n_rows} samples of {len(clip.sensors)} sensor(s)")
    else:
        print(f"wrote {args.out}: {summary['n_frames']} frames at {summary['point_rate_hz']:g} Hz, "
              f"{len(summary['points'])} angle point(s), {summary['n_analog_channels']} analog channel(s) at "
              f"{summary['analog_rate_hz']:g} Hz, {summary['n_events']} event(s)")  # fmt: skip
    return 0
