"""``stridetwin import xsens|dot|csv FILES... --site KEY=SITE ... --out FILE.stclip``: write another system's export
(or the project's samples CSV) as a clip."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="convert Xsens MT / Movella DOT exports or a StrideTwin CSV into a clip",
        description="Formats: xsens = Xsens MT Manager text export (one .txt per sensor); dot = Movella DOT CSV "
        "export (one .csv per sensor); csv = StrideTwin samples CSV (stridetwin.samples-csv/1). "
        "Each sensor needs a site: --site KEY=SITE, where KEY is the file name or stem, the device id "
        "(e.g. 00B42279), the DOT tag or MAC, or the CSV sensor id.",
    )
    parser.add_argument("format", choices=("xsens", "dot", "csv"), help="the files' format")
    parser.add_argument("files", nargs="+", metavar="FILE", help="export files")
    parser.add_argument(
        "--site",
        action="append",
        default=[],
        metavar="KEY=SITE",
        help="which site a sensor sits on (pelvis, thigh_l, thigh_r, shank_l, shank_r); repeat per sensor",
    )
    parser.add_argument("--out", required=True, metavar="FILE.stclip", help="clip to write (must not exist)")
    parser.add_argument(
        "--mag-au-ut",
        type=float,
        default=None,
        metavar="UT",
        help="local field strength in µT that one arbitrary magnetometer unit stands for (else Mag_* is left out)",
    )
    parser.add_argument("--pseudonym", default=None, help="patient pseudonym to store (never a name)")
    parser.add_argument("--walkway-length-m", type=float, default=None, help="walkway length of the test, m")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensor_drivers.errors import RecordingFormatError
    from sensor_drivers.recording.importers import import_files
    from stridetwin.cli import CliError

    metadata: dict = {}
    if args.pseudonym:
        metadata.setdefault("patient", {})["pseudonym"] = args.pseudonym
    if args.walkway_length_m is not None:
        metadata.setdefault("protocol", {})["walkway_length_m"] = args.walkway_length_m
    try:
        report = import_files(
            args.format,
            args.files,
            args.out,
            sites=args.site,
            mag_au_ut=args.mag_au_ut,
            metadata=metadata,
            overwrite=args.force,
        )
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: no such file") from None
    except FileExistsError as exc:
        raise CliError(f"{exc} (or pass --force)") from None
    except (RecordingFormatError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {report.out_path} ({report.format}, {len(report.sensors)} sensor(s))")
    for s in report.sensors:
        print(f"  {s.sensor_id} → {s.site.value}: {s.n_samples} samples from {s.source_file.name}")
    for note in report.notes + [n for s in report.sensors for n in s.notes]:
        print(f"  note: {note}")
    return 0
