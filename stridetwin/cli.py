"""The ``stridetwin`` command: a thin dispatcher over one module per subcommand in :mod:`stridetwin.commands`.

Each command module defines ``add_parser(subparsers)`` and sets ``func`` on its parser; heavy imports happen inside
``func`` so that ``stridetwin --help`` stays instant and the capture commands never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from stridetwin import __version__

#: Command modules under stridetwin.commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo", "record", "importer", "inspect", "analyze", "export", "recover", "upload", "jobs", "results", "atlas",
    "train", "trainer", "bench",
)  # fmt: skip


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="stridetwin",
        description="StrideTwin: from one 20 m walk with five IMUs to a look ahead at ramps and stairs.",
    )
    parser.add_argument("--version", action="version", version=f"stridetwin {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"stridetwin.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"stridetwin {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stridetwin {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` or similar: not an error of ours
        sys.stderr.close()
        return 0
