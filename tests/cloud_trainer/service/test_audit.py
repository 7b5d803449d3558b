"""The audit log: every upload, job and download is recorded in a hash chain that detects tampering."""

from __future__ import annotations

import json

import pytest

from cloud_trainer.service.audit import AuditLog, verify_audit_log
from protos.stridetwin.v1 import jobs_pb2
from stridetwin.cli import main
from tests.cloud_trainer.service.client import download, watch


def _log(tmp_path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit.log")
    for i in range(n):
        log.append("alpha", "clip.upload", clip_id=f"{i:032x}", outcome="accepted")
    return log


def test_a_service_session_leaves_a_verified_chain_of_who_did_what(trainer, uploaded):
    stubs = trainer.stubs("alpha")
    request = jobs_pb2.SubmitJobRequest(
        clip_id=uploaded.clip.clip_id, tasks=[jobs_pb2.TASK_SLOPE], budget=jobs_pb2.BUDGET_SMOKE, idempotency_key="a"
    )
    job = stubs.jobs.SubmitJob(request)
    events = watch(stubs, job.job_id)
    download(stubs, job.job_id, events[-1].result.artifacts[0].name)
    entries = [json.loads(line) for line in (trainer.data_dir / "audit.log").read_text().splitlines()]
    actions = [(e["clinic"], e["action"]) for e in entries]
    assert actions == [("alpha", "clip.upload"), ("alpha", "job.submit"), ("alpha", "job.start"),
                       ("alpha", "job.finish"), ("alpha", "artifact.download")]  # fmt: skip
    assert all(e["clip_id"] == uploaded.clip.clip_id for e in entries[:4])
    assert "P-0042" not in (trainer.data_dir / "audit.log").read_text()  # ids only, never the pseudonym
    report = verify_audit_log(trainer.data_dir / "audit.log")
    assert report.ok
    assert report.n_entries == 5


def test_the_chain_continues_across_restarts(tmp_path):
    _log(tmp_path, 3)
    _log(tmp_path, 2)
    report = verify_audit_log(tmp_path / "audit.log")
    assert report.ok
    assert report.n_entries == 5


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda lines: [*lines[:2], lines[2].replace("accepted", "rejected"), *lines[3:]], "line 3: entry altered"),
        (lambda lines: lines[:1] + lines[2:], "line 2: seq 3, expected 2"),
        (lambda lines: [lines[1], lines[0], *lines[2:]], "line 1: seq 2, expected 1"),
        (lambda lines: lines[:-1], "the log ends at entry 4, its head says entry 5"),
        (lambda lines: [*lines[:4], "not json"], "line 5 is not JSON"),
    ],
    ids=["altered", "removed", "reordered", "truncated", "garbage"],
)
def test_tampering_is_detected(tmp_path, tamper, expected):
    _log(tmp_path)
    path = tmp_path / "audit.log"
    path.write_text("\n".join(tamper(path.read_text().splitlines())) + "\n")
    report = verify_audit_log(path)
    assert not report.ok
    assert expected in report.problem


def test_a_consistently_rewritten_entry_is_caught_by_the_chain(tmp_path):
    from cloud_trainer.service.audit import entry_sha256

    _log(tmp_path)
    path = tmp_path / "audit.log"
    lines = path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["clinic"] = "beta"
    entry["sha256"] = entry_sha256(entry)  # the forger recomputes this entry's hash …
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    report = verify_audit_log(path)
    assert not report.ok  # … but the next entry still names the old one
    assert "line 3: prev_sha256 does not match" in report.problem


def test_audit_command_reports_ok_and_tampering(tmp_path, capsys):
    _log(tmp_path)
    assert main(["trainer", "audit", "--dir", str(tmp_path)]) == 0
    assert "audit log verified: 5 entries" in capsys.readouterr().out
    path = tmp_path / "audit.log"
    path.write_text(path.read_text().replace("accepted", "rejected", 1))
    assert main(["trainer", "audit", "--dir", str(tmp_path)]) == 1
    assert "TAMPERED" in capsys.readouterr().out
