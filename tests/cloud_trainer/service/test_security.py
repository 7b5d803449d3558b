"""Security over real TLS: every call needs a clinic's token, a clinic sees only its own clips, jobs and artifacts
(another clinic's are NOT_FOUND, exactly like ones that do not exist), plaintext only on loopback, health without
a token, call rate limits."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2

from cloud_trainer.service.auth import ClinicRegistry, hash_token
from cloud_trainer.service.config import Limits
from cloud_trainer.service.server import InsecureAddressError, create_server
from protos.channel import open_channel
from protos.stridetwin.v1 import artifacts_pb2, clips_pb2, jobs_pb2, server_pb2
from tests.cloud_trainer.service.client import Stubs, download, watch


def _submit(stubs: Stubs, clip_id: str, key: str = "k1") -> jobs_pb2.Job:
    return stubs.jobs.SubmitJob(
        jobs_pb2.SubmitJobRequest(
            clip_id=clip_id, tasks=[jobs_pb2.TASK_SLOPE], budget=jobs_pb2.BUDGET_SMOKE, idempotency_key=key
        )
    )


@pytest.mark.parametrize("token", [None, "", "stt_" + "A" * 43, "Basic dXNlcjpwYXNz"], ids=["none", "empty", "wrong",
                                                                                          "not-a-token"])  # fmt: skip
def test_missing_or_wrong_token_is_unauthenticated(trainer, token):
    stubs = trainer.stubs(token=token) if token is not None else Stubs.on(trainer.channel(None))
    for call in (
        lambda: stubs.server.GetServerInfo(server_pb2.GetServerInfoRequest()),
        lambda: stubs.jobs.ListJobs(jobs_pb2.ListJobsRequest()),
        lambda: list(stubs.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id="x"))),
        lambda: stubs.clips.UploadClip(iter([clips_pb2.UploadClipRequest(chunk=b"x")])),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tokens_are_stored_hashed_and_new_tokens_work_without_restart(trainer):
    text = (trainer.data_dir / "clinics.json").read_text()
    assert trainer.tokens["alpha"] not in text
    assert hash_token(trainer.tokens["alpha"]) in text
    token = ClinicRegistry(trainer.data_dir / "clinics.json").issue_token("gamma")
    info = trainer.stubs(token=token).server.GetServerInfo(server_pb2.GetServerInfoRequest())
    assert info.clinic == "gamma"


def test_a_revoked_token_is_refused_by_the_running_server_and_the_clinics_other_tokens_still_work(trainer):
    registry = ClinicRegistry(trainer.data_dir / "clinics.json")
    spare = registry.issue_token("alpha")
    stubs = trainer.stubs()
    assert stubs.server.GetServerInfo(server_pb2.GetServerInfoRequest()).clinic == "alpha"
    revoked = registry.revoke(hash_token(trainer.tokens["alpha"])[:8])
    assert revoked.clinic == "alpha"
    with pytest.raises(grpc.RpcError) as info:
        stubs.server.GetServerInfo(server_pb2.GetServerInfoRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trainer.stubs(token=spare).server.GetServerInfo(server_pb2.GetServerInfoRequest()).clinic == "alpha"
    with pytest.raises(KeyError, match="no token with id"):
        registry.revoke(revoked.token_id)


def test_health_answers_without_a_token(trainer):
    health = Stubs.on(trainer.channel(None)).health
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    for name in ("stridetwin.v1.ClipService", "stridetwin.v1.JobService"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        )


def test_server_info_reports_version_capabilities_and_limits(trainer):
    info = trainer.stubs("alpha").server.GetServerInfo(server_pb2.GetServerInfoRequest())
    assert info.api_version == "stridetwin.v1"
    assert info.server_version
    assert list(info.clip_schema_majors) == [1]
    assert set(info.tasks) == {jobs_pb2.TASK_SLOPE, jobs_pb2.TASK_STAIRS}
    assert info.limits.max_chunk_bytes == 1024 * 1024
    assert info.executor == "local"
    assert info.clinic == "alpha"


def test_tls_is_verified_against_the_trainers_ca(trainer, tmp_path):
    from cloud_trainer.service.pki import create_tls_files

    other_ca = create_tls_files(tmp_path / "other").ca_cert.read_bytes()
    channel = open_channel(f"localhost:{trainer.port}", trainer.tokens["alpha"], root_certificates=other_ca)
    with pytest.raises(grpc.RpcError) as info:
        Stubs.on(channel).server.GetServerInfo(server_pb2.GetServerInfoRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()
    plain = open_channel(f"127.0.0.1:{trainer.port}", trainer.tokens["alpha"], insecure_loopback=True)
    with pytest.raises(grpc.RpcError) as info:
        Stubs.on(plain).server.GetServerInfo(server_pb2.GetServerInfoRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # a TLS server does not speak plaintext
    plain.close()


def test_one_clinic_never_sees_anothers_clip_job_or_artifact(trainer, uploaded, clip_bytes):
    alpha, beta = trainer.stubs("alpha"), trainer.stubs("beta")
    job = _submit(alpha, uploaded.clip.clip_id)
    events = watch(alpha, job.job_id)
    assert events[-1].result.state == jobs_pb2.JOB_STATE_SUCCEEDED
    name = events[-1].result.artifacts[0].name
    assert download(alpha, job.job_id, name)[1]

    def not_found(call, what: str) -> str:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, what
        return info.value.details()

    foreign = {
        "clip": lambda: beta.clips.GetClip(clips_pb2.GetClipRequest(clip_id=uploaded.clip.clip_id)),
        "job": lambda: beta.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id)),
        "watch": lambda: list(beta.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.job_id))),
        "cancel": lambda: beta.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.job_id)),
        "artifacts": lambda: beta.artifacts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(job_id=job.job_id)),
        "download": lambda: download(beta, job.job_id, name),
        "submit on another's clip": lambda: _submit(beta, uploaded.clip.clip_id),
    }
    missing = {
        "clip": lambda: beta.clips.GetClip(clips_pb2.GetClipRequest(clip_id="0" * 32)),
        "job": lambda: beta.jobs.GetJob(jobs_pb2.GetJobRequest(job_id="0" * 32)),
    }
    for what, call in foreign.items():
        details = not_found(call, what)
        assert "alpha" not in details
    # Another clinic's ids are answered exactly as ids that do not exist (no existence oracle).
    assert not_found(foreign["clip"], "clip").replace(uploaded.clip.clip_id, "ID") == not_found(
        missing["clip"], "clip"
    ).replace("0" * 32, "ID")
    assert not_found(foreign["job"], "job").replace(job.job_id, "ID") == not_found(missing["job"], "job").replace(
        "0" * 32, "ID"
    )
    assert not beta.jobs.ListJobs(jobs_pb2.ListJobsRequest()).jobs
    assert not beta.clips.ListClips(clips_pb2.ListClipsRequest()).clips
    # Beta uploading the same bytes gets its own clip; alpha's is untouched.
    from tests.cloud_trainer.service.client import upload

    again = upload(beta, clip_bytes)
    assert not again.deduplicated
    assert again.clip.clip_id == uploaded.clip.clip_id
    assert not beta.jobs.ListJobs(jobs_pb2.ListJobsRequest()).jobs


def test_plaintext_only_on_loopback_and_only_when_asked(trainer):
    registry = ClinicRegistry(trainer.data_dir / "clinics.json")
    with pytest.raises(InsecureAddressError, match="plaintext is only served on loopback"):
        create_server("0.0.0.0:0", trainer.service, registry, insecure_loopback=True)
    with pytest.raises(InsecureAddressError, match="TLS files are required"):
        create_server("127.0.0.1:0", trainer.service, registry)


def test_calls_beyond_the_clinics_rate_are_resource_exhausted(make_trainer):
    trainer = make_trainer(limits=Limits(max_calls_per_s=5, upload_rate_bytes_per_s=0))
    stubs = trainer.stubs("alpha")
    codes = []
    for _ in range(30):
        try:
            stubs.server.GetServerInfo(server_pb2.GetServerInfoRequest())
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
            details = exc.details()
    assert "rate limit" in details
    assert codes[:10] == [grpc.StatusCode.OK] * 10  # the burst: twice the rate
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    # Another clinic has its own budget.
    trainer.stubs("beta").server.GetServerInfo(server_pb2.GetServerInfoRequest())
