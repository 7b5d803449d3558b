"""``stridetwin recover FILE [--out OUT]``: write a finished copy of a clip left unfinished by a crash or power loss."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="make a finished copy of an unfinished or damaged clip (the original is left untouched)",
    )
    parser.add_argument("file", metavar="FILE", help="clip (.stclip)")
    parser.add_argument("--out", default=None, help="copy to write (default: FILE.recovered.stclip beside it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensor_drivers.errors import RecordingFormatError
    from sensor_drivers.recording.clipfile import recover
    from stridetwin.cli import CliError

    try:
        report = recover(args.file, args.out)
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: no such file") from None
    except FileExistsError as exc:
        raise CliError(str(exc)) from None
    except (RecordingFormatError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if report.out_path is None:
        print(f"{args.file} is a valid finished clip; nothing to recover")
        return 0
    print(f"wrote {report.out_path} ({report.n_records_kept} records, {report.n_bytes_kept} bytes kept)")
    for sid, n in report.n_samples.items():
        print(f"  {sid}: {n} samples")
    for d in report.dropped:
        print(f"  dropped {d.n_bytes} bytes at {d.offset}: {d.reason}")
    return 0
