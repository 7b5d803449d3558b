"""``stridetwin export csv FILE --out X.csv``: write a clip's samples as the StrideTwin samples CSV."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a clip's samples (csv: stridetwin.samples-csv/1)",
        description="csv: one row per sample, all sensors, units in the column names (docs/clip-format.md).",
    )
    parser.add_argument("format", choices=("csv",), help="output format")
    parser.add_argument("file", metavar="FILE", help="clip (.stclip)")
    parser.add_argument("--out", required=True, metavar="OUT", help="file to write (must not exist)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensor_drivers.errors import RecordingFormatError
    from sensor_drivers.recording.clipfile import read_clip
    from sensor_drivers.recording.csv_format import export_csv
    from stridetwin.cli import CliError

    try:
        clip = read_clip(args.file)
        n_rows = export_csv(clip, args.out, overwrite=args.force)
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: no such file") from None
    except FileExistsError:
        raise CliError(f"{args.out} already exists (pass --force to overwrite)") from None
    except (RecordingFormatError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {args.out}: {n_rows} samples of {len(clip.sensors)} sensor(s)")
    return 0
