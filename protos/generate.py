"""Generate the Python code of the contract: ``python -m protos.generate`` (or ``make protos``).

Writes ``protos/stridetwin/v1/*_pb2.py`` and ``*_pb2_grpc.py`` beside the ``.proto`` files, with the pinned
grpcio-tools (the generated code embeds the generator's version, so another version would produce different files).
``--out DIR`` writes the tree under ``DIR`` instead (the staleness test compares that with the committed files).

The ``.proto`` files are compiled with the repository root as the include path, so they import each other as
``protos/stridetwin/v1/….proto`` and the generated modules import each other as ``protos.stridetwin.v1.…``: the
proto package ``stridetwin.v1`` never shadows the ``stridetwin`` command package.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

#: The grpcio-tools release the committed code was generated with (also pinned in pyproject's dev extra).
GRPCIO_TOOLS_VERSION = "1.85.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = Path("protos") / "stridetwin" / "v1"


def proto_files(source_root: Path = REPO_ROOT) -> list[Path]:
    """The contract's ``.proto`` files, relative to ``source_root`` (the repository root), sorted."""
    return sorted(p.relative_to(source_root) for p in (source_root / PROTO_DIR).glob("*.proto"))


def generated_names(source_root: Path = REPO_ROOT) -> list[str]:
    """File names the generator writes for the ``.proto`` files (``clips_pb2.py``, ``clips_pb2_grpc.py``, …)."""
    return sorted(f"{p.stem}{suffix}" for p in proto_files(source_root) for suffix in ("_pb2.py", "_pb2_grpc.py"))


def generate(out_root: Path = REPO_ROOT, source_root: Path = REPO_ROOT) -> list[Path]:
    """Compile every ``.proto`` under ``source_root/protos/stridetwin/v1`` into ``out_root/protos/stridetwin/v1``;
    returns the files written.

    Raises RuntimeError when grpcio-tools is missing, is not the pinned version, or protoc reports an error.
    """
    try:
        installed = metadata.version("grpcio-tools")
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"grpcio-tools is not installed; pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}") from None
    if installed != GRPCIO_TOOLS_VERSION:
        raise RuntimeError(
            f"grpcio-tools {installed} is installed, the contract is generated with {GRPCIO_TOOLS_VERSION} "
            f"(pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}, or change the pin in protos/generate.py and "
            "pyproject.toml and commit the regenerated code)"
        )
    import grpc_tools
    from grpc_tools import protoc

    out_dir = out_root / PROTO_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={source_root}",
        f"--proto_path={well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(source_root / p) for p in proto_files(source_root)),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} (its message is above)")
    return [out_dir / name for name in generated_names(source_root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protos.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="root to write protos/stridetwin/v1 under")
    args = parser.parse_args(argv)
    try:
        written = generate(args.out)
    except RuntimeError as exc:
        print(f"protos.generate: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
