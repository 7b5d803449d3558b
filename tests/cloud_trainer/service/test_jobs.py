"""Jobs over a real channel with the test runner: idempotent submit, watch stream, cancel, per-clinic limits,
listing, artifacts downloaded and verified."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import grpc
import pytest

from cloud_trainer.service.config import Limits
from protos.stridetwin.v1 import artifacts_pb2, jobs_pb2
from tests.cloud_trainer.service.client import download, watch


def _submit(stubs, clip_id: str, key: str, budget=jobs_pb2.BUDGET_SMOKE, tasks=(jobs_pb2.TASK_SLOPE,), seed=0):
    return stubs.jobs.SubmitJob(
        jobs_pb2.SubmitJobRequest(clip_id=clip_id, tasks=list(tasks), budget=budget, idempotency_key=key, seed=seed)
    )


def _wait_state(stubs, job_id: str, state, timeout_s: float = 20.0) -> jobs_pb2.Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = stubs.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))
        if job.state == state:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {jobs_pb2.JobState.Name(state)} (now {job.state})")


def test_a_job_runs_reports_progress_and_delivers_verified_artifacts(trainer, uploaded):
    stubs = trainer.stubs("alpha")
    job = _submit(stubs, uploaded.clip.clip_id, "first", tasks=(jobs_pb2.TASK_SLOPE, jobs_pb2.TASK_STAIRS))
    assert job.state in (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)
    events = watch(stubs, job.job_id)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "job"
    assert kinds[-1] == "result"
    assert [e.seq for e in events] == list(range(len(events)))
    progress = [e.progress for e in events if e.HasField("progress")]
    assert [p.samples for p in progress if p.stage == jobs_pb2.STAGE_PREDICTION] == [1000, 2000, 3000, 4000]
    assert {p.task for p in progress if p.HasField("task")} == {"slope", "stairs"}
    assert all(p.HasField("eta_s") for p in progress if p.stage == jobs_pb2.STAGE_PREDICTION)
    result = events[-1].result
    assert result.state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert not result.resumed
    assert json.loads(result.report_json)["samples_per_sensor"] == {f"S{i}": 400 for i in range(5)}
    names = {a.name: a for a in result.artifacts}
    assert set(names) == {"angles/slope.csv", "angles/stairs.csv", "report.json"}
    assert names["angles/slope.csv"].kind == artifacts_pb2.ARTIFACT_KIND_ANGLES_CSV
    assert names["angles/slope.csv"].task == "slope"
    assert names["angles/slope.csv"].level == 5
    listed = stubs.artifacts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(job_id=job.job_id)).artifacts
    assert {a.name for a in listed} == set(names)
    for art in listed:
        info, body = download(stubs, job.job_id, art.name)
        assert hashlib.sha256(body).hexdigest() == art.sha256 == info.sha256
        assert len(body) == art.size_bytes
    # A broken download resumes from an offset.
    info, tail = download(stubs, job.job_id, "report.json", offset=10)
    assert tail == download(stubs, job.job_id, "report.json")[1][10:]
    final = stubs.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id))
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert final.n_attempts == 1
    assert final.progress.stage == jobs_pb2.STAGE_DONE
    # Watching a finished job: its state, then its result, at once.
    again = watch(stubs, job.job_id)
    assert [e.WhichOneof("event") for e in again] == ["job", "result"]


def test_submit_is_idempotent_per_key_and_refuses_a_reused_key(trainer, uploaded):
    stubs = trainer.stubs("alpha")
    first = _submit(stubs, uploaded.clip.clip_id, "retry-me")
    second = _submit(stubs, uploaded.clip.clip_id, "retry-me")
    assert second.job_id == first.job_id
    with pytest.raises(grpc.RpcError) as info:
        _submit(stubs, uploaded.clip.clip_id, "retry-me", seed=7)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "retry-me" in info.value.details()
    assert first.job_id in info.value.details()
    assert len(stubs.jobs.ListJobs(jobs_pb2.ListJobsRequest()).jobs) == 1


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({"tasks": []}, "tasks: at least one of slope, stairs"),
        ({"tasks": [1, 1]}, "each task at most once"),
        ({"tasks": [9]}, "task 9: accepted TASK_SLOPE"),
        ({"idempotency_key": ""}, "idempotency_key: 1-128 printable ASCII"),
        ({"budget": 7}, "budget 7: accepted"),
    ],
)
def test_bad_job_requests_are_invalid_argument(trainer, uploaded, request_fields, expected):
    fields = {"clip_id": uploaded.clip.clip_id, "tasks": [1], "idempotency_key": "k"} | request_fields
    with pytest.raises(grpc.RpcError) as info:
        trainer.stubs("alpha").jobs.SubmitJob(jobs_pb2.SubmitJobRequest(**fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in info.value.details()


def test_cancel_a_running_and_a_queued_job(make_trainer, clip_bytes):
    trainer = make_trainer(workers=1)
    stubs = trainer.stubs("alpha")
    from tests.cloud_trainer.service.client import upload

    clip_id = upload(stubs, clip_bytes).clip.clip_id
    running = _submit(stubs, clip_id, "a", budget=jobs_pb2.BUDGET_FULL)
    queued = _submit(stubs, clip_id, "b", budget=jobs_pb2.BUDGET_FULL)
    _wait_state(stubs, running.job_id, jobs_pb2.JOB_STATE_RUNNING)
    assert stubs.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=queued.job_id)).state == jobs_pb2.JOB_STATE_QUEUED
    watcher: list = []
    thread = threading.Thread(target=lambda: watcher.extend(watch(stubs, running.job_id)))
    thread.start()
    cancelled = stubs.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=queued.job_id))
    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED
    stubs.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=running.job_id))
    thread.join(20)
    assert watcher[-1].result.state == jobs_pb2.JOB_STATE_CANCELLED
    assert not watcher[-1].result.artifacts
    job = stubs.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=running.job_id))
    assert job.state == jobs_pb2.JOB_STATE_CANCELLED
    assert job.cancel_requested
    assert stubs.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=running.job_id)).state == jobs_pb2.JOB_STATE_CANCELLED
    done = _submit(stubs, clip_id, "c")
    _wait_state(stubs, done.job_id, jobs_pb2.JOB_STATE_SUCCEEDED)
    with pytest.raises(grpc.RpcError) as info:
        stubs.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=done.job_id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already succeeded" in info.value.details()


def test_concurrent_jobs_are_limited_per_clinic(make_trainer, clip_bytes):
    trainer = make_trainer(workers=3, limits=Limits(max_running_jobs_per_clinic=2, max_pending_jobs_per_clinic=4,
                                                    upload_rate_bytes_per_s=0, max_calls_per_s=0))  # fmt: skip
    from tests.cloud_trainer.service.client import upload

    alpha, beta = trainer.stubs("alpha"), trainer.stubs("beta")
    a_clip = upload(alpha, clip_bytes).clip.clip_id
    b_clip = upload(beta, clip_bytes).clip.clip_id
    a_jobs = [_submit(alpha, a_clip, f"a{i}", budget=jobs_pb2.BUDGET_QUICK) for i in range(4)]
    with pytest.raises(grpc.RpcError) as info:
        _submit(alpha, a_clip, "a-too-many")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4 jobs of this clinic are queued or running (at most 4)" in info.value.details()
    assert _submit(alpha, a_clip, "a0", budget=jobs_pb2.BUDGET_QUICK).job_id == a_jobs[0].job_id  # a retry is fine
    b_job = _submit(beta, b_clip, "b0", budget=jobs_pb2.BUDGET_QUICK)
    max_running = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # one ListJobs is one snapshot of the store; four GetJobs in a row can see a job start after another ended
        running = alpha.jobs.ListJobs(jobs_pb2.ListJobsRequest(states=[jobs_pb2.JOB_STATE_RUNNING])).jobs
        max_running = max(max_running, len(running))
        states = [alpha.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=j.job_id)).state for j in a_jobs]
        if all(s == jobs_pb2.JOB_STATE_SUCCEEDED for s in states):
            break
        time.sleep(0.02)
    assert max_running == 2
    # Beta's job ran beside alpha's two: the third worker was not left to alpha's queue.
    b_final = _wait_state(beta, b_job.job_id, jobs_pb2.JOB_STATE_SUCCEEDED)
    a_started = sorted(alpha.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=j.job_id)).started_unix_s for j in a_jobs)
    assert b_final.started_unix_s < a_started[2]


def test_list_jobs_filters_and_pages(trainer, uploaded):
    stubs = trainer.stubs("alpha")
    ids = [_submit(stubs, uploaded.clip.clip_id, f"k{i}").job_id for i in range(3)]
    for job_id in ids:
        _wait_state(stubs, job_id, jobs_pb2.JOB_STATE_SUCCEEDED)
    first = stubs.jobs.ListJobs(jobs_pb2.ListJobsRequest(page_size=2))
    assert len(first.jobs) == 2
    assert first.next_page_token
    rest = stubs.jobs.ListJobs(jobs_pb2.ListJobsRequest(page_size=2, page_token=first.next_page_token))
    assert len(rest.jobs) == 1
    assert not rest.next_page_token
    assert {j.job_id for j in [*first.jobs, *rest.jobs]} == set(ids)
    assert [j.job_id for j in first.jobs] == ids[::-1][:2]  # newest first
    none = stubs.jobs.ListJobs(jobs_pb2.ListJobsRequest(states=[jobs_pb2.JOB_STATE_FAILED]))
    assert not none.jobs
    by_clip = stubs.jobs.ListJobs(jobs_pb2.ListJobsRequest(clip_id=uploaded.clip.clip_id))
    assert len(by_clip.jobs) == 3
