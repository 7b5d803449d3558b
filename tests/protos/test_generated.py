"""The committed generated code is what ``python -m protos.generate`` produces from the committed ``.proto`` files."""

from __future__ import annotations

import shutil

from protos import generate


def _stale(out_root) -> list[str]:
    committed = generate.REPO_ROOT / generate.PROTO_DIR
    fresh = out_root / generate.PROTO_DIR
    names = sorted({p.name for p in committed.glob("*_pb2*.py")} | {p.name for p in fresh.glob("*_pb2*.py")})
    return [
        n for n in names if not (committed / n).exists() or not (fresh / n).exists()
        or (committed / n).read_bytes() != (fresh / n).read_bytes()
    ]  # fmt: skip


def test_committed_generated_code_is_current(tmp_path):
    generate.generate(tmp_path)
    stale = _stale(tmp_path)
    assert not stale, f"generated code is stale: {stale}; run `python -m protos.generate` (or `make protos`)"


def test_a_changed_proto_is_detected_as_stale(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(generate.REPO_ROOT / generate.PROTO_DIR, source / generate.PROTO_DIR)
    proto = source / generate.PROTO_DIR / "jobs.proto"
    proto.write_text(proto.read_text().replace("message GetJobRequest {", "message GetJobRequest {\n  bool x = 9;"))
    generate.generate(tmp_path / "out", source_root=source)
    assert _stale(tmp_path / "out") == ["jobs_pb2.py"]


def test_generated_modules_import_as_a_package():
    from protos.stridetwin.v1 import artifacts_pb2_grpc, clips_pb2_grpc, jobs_pb2_grpc, server_pb2_grpc

    assert clips_pb2_grpc.ClipServiceStub
    assert jobs_pb2_grpc.JobServiceStub
    assert artifacts_pb2_grpc.ArtifactServiceStub
    assert server_pb2_grpc.ServerServiceStub
