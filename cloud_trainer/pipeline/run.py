"""The patient pipeline's orchestrator: ``run(request, on_progress, cancel) -> PipelineResult``
(:data:`cloud_trainer.pipeline.api.PipelineRunner`; the trainer service and ``stridetwin train`` call it).

Stages, each writing into its own folder of ``request.out_dir``:

| stage | folder | what |
|---|---|---|
| reference | ``reference/`` | the patient's reference cycle on the twin (:mod:`~cloud_trainer.pipeline.reference`) |
| adaptation | ``adaptation/`` | the atlas fine-tuned to the patient (physics-only: trained from scratch), evaluated |
| prediction | ``prediction/<task>/`` | per task: curriculum over 5 levels with BC and GAIL (physics-only: without) |
| export | ``policies/``, ``angles/``, ``videos/``, ``report.*`` | evaluation per level, ONNX, videos, report |

**Resumption.** ``run.json`` records the request (input checksum, tasks, budget, method, seed) and which stages are
done; every training stage checkpoints after every batch of updates (``Budget.checkpoint_every_s``) and at every
curriculum event. Started again on the same ``out_dir`` (after a crash, a SIGKILL, a cancel, a restart of the
trainer), the run skips finished stages and continues the current one from its checkpoint; a directory holding
another request is refused (:class:`~cloud_trainer.pipeline.errors.PipelineStateError`).

**Cancellation.** ``cancel`` is checked between updates; the stage writes its checkpoint and
:class:`~cloud_trainer.pipeline.errors.PipelineCancelled` is raised.

**Threads.** MuJoCo's batch runs on 2 threads. The training loops choose torch's threads for each update by measured
time (:mod:`cloud_trainer.learn.threads`: two are faster on an idle 2-core machine, far slower as soon as anything
else holds a core); everything else (rollouts, checks, evaluation, export) runs torch on 1.

**What is measured.** Wall-clock and samples per stage (over all invocations), the levels reached per task, the
process's peak resident memory: in ``training.json`` and the report's ``run`` section.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cloud_trainer.atomic_files import write_json_atomic
from cloud_trainer.envs.constants import ACTION_WIDTH, OBSERVATION_WIDTH
from cloud_trainer.hashing import file_sha256
from cloud_trainer.learn.ppo import PPO
from cloud_trainer.learn.threads import INFERENCE_THREADS, ThreadChooser, thread_candidates
from cloud_trainer.learn.train import peak_rss_mb
from cloud_trainer.pipeline.api import Artifact, PipelineRequest, PipelineResult, ProgressCallback, ProgressEvent, Stage
from cloud_trainer.pipeline.budgets import Budget, get_budget
from cloud_trainer.pipeline.errors import PipelineStateError

RUN_FORMAT = "stridetwin.pipeline-run/1"
TRAINING_FORMAT = "stridetwin.pipeline-training/1"
STATE_NAME = "run.json"
TRAINING_NAME = "training.json"
#: The motion a task imitates, in its prediction folder.
TASK_REFERENCE_NAME = "reference.npz"
ENV_THREADS = 2


def run(request: PipelineRequest, on_progress: ProgressCallback, cancel: threading.Event) -> PipelineResult:
    """Run (or resume) the patient pipeline for ``request``; see the module docstring.

    Raises:
        ValueError: a request with unknown tasks, budget or method.
        PatientDataError: the clip or motion file cannot make a reference (the message says why).
        PipelineStateError: ``out_dir`` holds a run of another request, or a damaged one.
        PipelineCancelled: ``cancel`` was set; everything up to the last checkpoint is kept.
    """
    return PipelineRun(request, on_progress, cancel).execute()


class PipelineRun:
    """One invocation of the pipeline on one output directory.

    ``gail=False`` runs the hybrid method without the discriminator (behaviour cloning and curriculum kept): the
    ablation that measures what GAIL adds (``bench/pipeline.py``); it is recorded in ``run.json`` and the report.
    """

    def __init__(
        self, request: PipelineRequest, on_progress: ProgressCallback, cancel: threading.Event, *, gail: bool = True
    ) -> None:
        request.validate()
        self.request = request
        self.budget: Budget = get_budget(request.budget)
        self.out = Path(request.out_dir)
        self.on_progress = on_progress
        self.cancel = cancel
        self.hybrid = request.method == "hybrid"
        self.gail = self.hybrid and gail
        self.started = time.monotonic()
        self.samples_total = self.budget.samples_for(len(request.tasks))
        self._samples_this_run = 0
        self._train_s_this_run = 0.0
        self._stage_started: float | None = None  # when the training stage under way began (this invocation)

    # ------------------------------------------------------------------ state file

    def _identity(self) -> dict[str, Any]:
        """The request as ``run.json`` records it and ``training.json`` and the report copy it: the input by its
        SHA-256, never by its path (a file name may hold the patient's name; a resumed run is matched by content)."""
        r = self.request
        return {
            "input_sha256": file_sha256(Path(r.input_path)) if Path(r.input_path).is_file() else None,
            "tasks": list(r.tasks),
            "budget": r.budget,
            "method": r.method,
            "seed": r.seed,
            "gail": self.gail,
            # only when another than the shipped atlas is asked for: runs recorded before the option resume as before
            "atlas_sha256": None if r.atlas_path is None else file_sha256(Path(r.atlas_path)),
        }

    def _open_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / STATE_NAME
        identity = self._identity()
        if path.exists():
            try:
                state = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise PipelineStateError(
                    f"{path}: not a readable run record ({exc}); choose another directory"
                ) from None
            if state.get("format") != RUN_FORMAT:
                raise PipelineStateError(f"{path}: not a {RUN_FORMAT!r} run record; choose another directory")
            theirs = {k: state["request"].get(k) for k in identity}
            if theirs != identity:
                differ = sorted(k for k in identity if theirs.get(k) != identity[k])
                raise PipelineStateError(
                    f"{self.out} holds a run of another request (differs in {', '.join(differ)}); resume it with the "
                    "same input and options, or choose another directory"
                )
            self.state = state
            self.resumed = any(s.get("samples", 0) or s.get("done") for s in state["stages"].values())
        else:
            self.state = {"format": RUN_FORMAT, "request": identity, "stages": {}, "invocations": 0}
            self.resumed = False
        self.state["invocations"] += 1
        self._save_state()

    def _save_state(self) -> None:
        self.state["peak_rss_mb"] = max(float(self.state.get("peak_rss_mb") or 0.0), round(peak_rss_mb(), 1))
        write_json_atomic(self.out / STATE_NAME, self.state)

    def _stage(self, name: str) -> dict[str, Any]:
        return self.state["stages"].setdefault(name, {"done": False, "wall_s": 0.0, "samples": 0, "invocations": 0})

    def _finish_stage(self, name: str, wall_s: float, samples: int | None = None, **extra) -> None:
        record = self._stage(name)
        record["wall_s"] = round(record["wall_s"] + wall_s, 3)
        record["invocations"] += 1
        if samples is not None:
            record["samples"] = samples
        record.update(extra, done=True)
        record["peak_rss_mb"] = round(peak_rss_mb(), 1)
        self._stage_started = None
        self._save_state()

    # ------------------------------------------------------------------ progress

    def _emit(self, stage: Stage, message: str, task: str | None = None, level: int | None = None) -> None:
        done = self._samples_done()
        rate = self._samples_this_run / self._train_s_this_run if self._train_s_this_run > 0 else None
        eta = (self.samples_total - done) / rate if rate else None
        time_left_s = self._training_time_left_s()
        if eta is not None and time_left_s is not None and self._stage_started is not None:
            # the time goal ends training sooner than the samples would on a slow machine
            eta = min(eta, time_left_s - (time.monotonic() - self._stage_started))
        self.on_progress(
            ProgressEvent(
                stage, message, task, level, done, self.samples_total, round(time.monotonic() - self.started, 2),
                None if eta is None else round(max(eta, 0.0), 1),
            )
        )  # fmt: skip

    def _samples_done(self) -> int:
        stages = self.state["stages"]
        return sum(int(stages.get(name, {}).get("samples", 0)) for name in self._training_stage_names())

    def _training_stage_names(self) -> list[str]:
        return ["adaptation", *(f"prediction/{t}" for t in self.request.tasks)]

    def _training_progress(self, stage: Stage, name: str, task: str | None):
        """An ``on_update`` callback for a training stage: counts samples and emits a progress event."""
        record = self._stage(name)
        last = {"samples": record.get("samples", 0), "wall_s": None}
        self._stage_started = time.monotonic()

        def on_update(row: dict) -> None:
            new = row["samples"] - last["samples"]
            if last["wall_s"] is not None:
                self._samples_this_run += new
                self._train_s_this_run += row["wall_s"] - last["wall_s"]
            last["samples"], last["wall_s"] = row["samples"], row["wall_s"]
            record["samples"] = row["samples"]
            level = row.get("level")
            note = f" level {level}" if level else ""
            ret = row.get("curriculum_mean_return")
            msg = f"{name}{note}: {row['samples']:,} samples" + (f", mean return {ret:.1f}" if ret is not None else "")
            if row.get("event"):
                msg += f" ({row['event'].replace('_', ' ')})"
            self._emit(stage, msg, task, level)

        return on_update

    # ------------------------------------------------------------------ the stages

    def execute(self) -> PipelineResult:
        self._open_state()
        torch.set_num_threads(INFERENCE_THREADS)  # updates choose their own (learn/threads.py)
        reference, patient, gait, ref_summary = self._reference()
        adapted_ppo, adaptation = self._adaptation(reference, patient, gait)
        tasks = self._prediction(reference, patient, gait, adapted_ppo)
        return self._export(reference, patient, gait, ref_summary, adapted_ppo, adaptation, tasks)

    def _reference(self):
        from cloud_trainer.pipeline.reference import (
            ObservedGait,
            PatientInfo,
            PatientReferenceBuilder,
            load_reference,
            save_reference,
        )
        from cloud_trainer.twin.anthropometry import Anthropometry

        folder = self.out / "reference"
        record = self._stage("reference")
        if record["done"]:
            summary = json.loads((folder / "summary.json").read_text())
            reference = load_reference(folder / "reference.npz")
        else:
            self._emit(Stage.REFERENCE, "building the patient's reference motion")
            t0 = time.monotonic()
            builder = PatientReferenceBuilder(
                n_cycle_frames=self.budget.n_cycle_frames, max_walk_s=self.budget.max_walk_s
            )
            builder.build(self.request.input_path)
            folder.mkdir(exist_ok=True)
            save_reference(builder.reference_, folder / "reference.npz")
            summary = _jsonable(builder.summary_)
            write_json_atomic(folder / "summary.json", summary)
            reference = builder.reference_
            self._finish_stage("reference", time.monotonic() - t0)
        p = summary["patient"]
        patient = PatientInfo(
            p["pseudonym"], Anthropometry(p["height_m"], p["mass_kg"], p["sex"]), p["affected_side"]
        )
        g = summary["gait"]
        gait = ObservedGait(g["speed_m_s"], g["stride_length_m"], g["source"], g.get("cadence_steps_min"))
        self._emit(
            Stage.REFERENCE,
            f"reference: {summary['strides_used']} strides, {gait.speed_m_s:.2f} m/s, "
            f"{gait.stride_length_m:.2f} m stride",
        )
        return reference, patient, gait, summary

    def _adaptation(self, reference, patient, gait) -> tuple[PPO, dict]:
        from cloud_trainer.pipeline.adapt import adaptation_config, evaluate_adapted, make_adaptation_env
        from cloud_trainer.pipeline.loop import StageTrainer
        from cloud_trainer.pipeline.policy import load_policy, save_policy

        folder = self.out / "adaptation"
        record = self._stage("adaptation")
        args = self.budget.ppo_args()
        if record["done"]:
            policy = load_policy(folder / "policy.pt")
            return policy.to_ppo(args), json.loads((folder / "eval.json").read_text())
        if self.hybrid:
            from cloud_trainer.atlas.weights import load_atlas
            from cloud_trainer.learn.terrain_view import reads_terrain

            atlas = load_atlas(self.request.atlas_path)
            ppo = atlas.to_ppo(args)
            start = "the Healthy Motion Atlas"
            if self.request.atlas_path is not None:  # named by the SHA-256 that run.json matched it by
                start += f" ({Path(self.request.atlas_path).name}, SHA-256 {self.state['request']['atlas_sha256']})"
            atlas_reads_terrain = reads_terrain(atlas.manifest)
        else:
            torch.manual_seed(self.request.seed)
            ppo = PPO(OBSERVATION_WIDTH, ACTION_WIDTH, args)
            start = "a random initialisation (physics-only baseline)"
            atlas_reads_terrain = False
        config = adaptation_config(gait)

        def make_env(level, cue, seed):
            return make_adaptation_env(reference, patient.anthropometry, config, self.budget.n_envs, seed, ENV_THREADS)

        self._emit(Stage.ADAPTATION, f"adapting {start} to the patient")
        t0 = time.monotonic()
        trainer = StageTrainer(
            folder, ppo, make_env, budget_samples=self.budget.adaptation_samples,
            checkpoint_every_s=self.budget.checkpoint_every_s, seed=self.request.seed,
            on_update=self._training_progress(Stage.ADAPTATION, "adaptation", None), cancel=self.cancel,
            threads=ThreadChooser(thread_candidates()),
        ).run()  # fmt: skip
        provenance = {"initialised_from": start, "reads_terrain": atlas_reads_terrain}
        manifest = self._manifest(config, patient, reference, "walk", trainer, provenance)
        save_policy(ppo, folder / "policy.pt", manifest)
        self._emit(Stage.ADAPTATION, "evaluating the adapted policy")
        doc = evaluate_adapted(
            load_policy(folder / "policy.pt"), reference, patient.anthropometry, gait,
            n_repeats=self.budget.adaptation_eval_repeats, duration_s=self.budget.adaptation_eval_s,
            seed=self.request.seed, n_threads=ENV_THREADS,
        )  # fmt: skip
        doc["initialised_from"] = start
        doc["training"] = dataclasses.asdict(trainer.counters_)
        write_json_atomic(folder / "eval.json", _jsonable(doc))
        self._finish_stage(
            "adaptation", time.monotonic() - t0, trainer.counters_.samples, training_wall_s=trainer.counters_.wall_s
        )
        return ppo, doc

    def _prediction(self, reference, patient, gait, adapted_ppo: PPO) -> dict[str, dict]:
        from cloud_trainer.learn.terrain_view import blind_to_terrain, reads_terrain
        from cloud_trainer.pipeline.bc import BC_DECAY_FRACTION, BCLoss
        from cloud_trainer.pipeline.curriculum import Curriculum
        from cloud_trainer.pipeline.gail import Discriminator, features
        from cloud_trainer.pipeline.loop import StageTrainer
        from cloud_trainer.pipeline.policy import load_policy, save_policy
        from cloud_trainer.pipeline.predict import (
            cue_levels,
            deterministic_episodes,
            make_task_env,
            task_config,
            task_goal,
        )

        b = self.budget
        root = self.out / "prediction"
        root.mkdir(exist_ok=True)
        priors = self._priors(reference, patient, gait, adapted_ppo) if self.hybrid else {}
        results: dict[str, dict] = {}
        for index, task in enumerate(self.request.tasks):
            name = f"prediction/{task}"
            folder = root / task
            record = self._stage(name)
            seed = self.request.seed + 101 * (index + 1)
            if record["done"]:
                saved = _load_task_reference(folder)  # none in runs made before tasks kept their own
                results[task] = self._task_result(folder, reference if saved is None else saved)
                continue
            folder.mkdir(exist_ok=True)
            t0 = time.monotonic()
            task_ref = self._task_reference(task, reference, patient, gait, folder)

            def make_env(level, cue, env_seed, n_envs=b.n_envs, task=task, task_ref=task_ref):
                return make_task_env(
                    task, level, cue, task_ref, patient.anthropometry, gait, n_envs=n_envs,
                    episode_steps=b.task_episode_steps, seed=env_seed, n_threads=ENV_THREADS,
                )  # fmt: skip

            reference_return = self._flat_return(reference, patient, gait, adapted_ppo)
            curriculum = Curriculum(
                reference_return=reference_return, min_episodes=b.curriculum_min_episodes,
                window_episodes=b.curriculum_window_episodes, guided_levels=cue_levels(task),
                check_every_samples=b.mastery_check_every_samples,
            )  # fmt: skip

            def check(ppo, level, check_seed, make_env=make_env, curriculum=curriculum):
                env = make_env(level, False, check_seed, n_envs=b.mastery_check_envs)
                try:  # a check stops at the first fall beyond those the rule allows
                    return deterministic_episodes(env, ppo, max_falls=curriculum.allowed_falls(env.num_envs))
                finally:
                    env.close()

            adapted = load_policy(self.out / "adaptation" / "policy.pt")
            ppo = adapted.to_ppo(b.ppo_args())
            if not reads_terrain(adapted.manifest):  # from the flat atlas: it reads the rays as pelvis height
                blind_to_terrain(ppo.policy, ppo.value)
            bc = BCLoss(priors["bc_proxy"]) if self.hybrid else None
            if bc is not None:
                blind_to_terrain(bc.proxy)  # its flat-ground answer, not its reaction to rays it never saw
            discriminator = None
            if self.gail:
                discriminator = Discriminator(features(priors["pairs"].obs, priors["pairs"].actions), seed=seed)
            progress = self._training_progress(Stage.PREDICTION, name, task)
            goal = task_goal(task, gait)

            def on_update(row, folder=folder, ppo=ppo, task=task, progress=progress, goal=goal, task_ref=task_ref):
                if row.get("event") in ("promoted", "complete"):
                    config = task_config(task, row["level"], gait, episode_steps=b.task_episode_steps)
                    save_policy(ppo, folder / f"level_{row['level']}.pt", self._manifest(
                        config, patient, task_ref, task, None, {"mastered_level": row["level"],
                                                                 "samples": row["samples"]}))  # fmt: skip
                progress(row)

            self._emit(Stage.PREDICTION, f"{task}: curriculum from level 1", task, 1)
            trainer = StageTrainer(
                folder, ppo, make_env, budget_samples=self._task_budget_samples(index), bc=bc,
                bc_decay_samples=int(BC_DECAY_FRACTION * b.prediction_samples), discriminator=discriminator,
                curriculum=curriculum, check=check, checkpoint_every_s=b.checkpoint_every_s,
                time_limit_s=self._task_time_limit_s(index), seed=seed, on_update=on_update,
                cancel=self.cancel, threads=ThreadChooser(thread_candidates()),
            ).run()  # fmt: skip
            top = max(curriculum.level, 1)
            config = task_config(task, top, gait, episode_steps=b.task_episode_steps)
            save_policy(ppo, folder / "policy.pt", self._manifest(config, patient, task_ref, task, trainer, {
                "trained_level": top, "goal": dataclasses.asdict(goal)}))  # fmt: skip
            summary = {
                "task": task,
                "goal": dataclasses.asdict(goal),
                "curriculum": curriculum.to_json(),
                "training": dataclasses.asdict(trainer.counters_),
                "bc": {"weight_start": 0.2, "decay_samples": int(BC_DECAY_FRACTION * b.prediction_samples)}
                if self.hybrid else None,
                "gail": {"expert_pairs": len(priors["pairs"].obs), "last": _last_gail(trainer.last_rows_)}
                if self.gail else None,
            }  # fmt: skip
            write_json_atomic(folder / "curriculum.json", _jsonable(summary))
            self._finish_stage(
                name, time.monotonic() - t0, trainer.counters_.samples, levels_mastered=curriculum.levels_mastered,
                training_wall_s=trainer.counters_.wall_s,
            )  # fmt: skip
            results[task] = self._task_result(folder, task_ref)
        return results

    def _task_budget_samples(self, index: int) -> int:
        """Training samples of the ``index``-th task: the budget's per task plus what the tasks before it left
        unused by mastering every level early (docs/pipeline.md: both benchmark twins' slopes stop near 1 of 2 M),
        so the run's total stays the budget's and its wall-clock within the budget's goal."""
        per_task = self.budget.prediction_samples
        earlier = self.request.tasks[:index]
        left = sum(per_task - int(self._stage(f"prediction/{t}")["samples"]) for t in earlier)
        return per_task + max(left, 0)

    def _task_time_limit_s(self, index: int) -> float | None:
        """The ``index``-th task's share of the budget's time goal (``Budget.time_limit_s``; None: no goal): what the
        finished stages left of it, less the export's reserve, split evenly over this task and the ones after it."""
        left_s = self._training_time_left_s()
        return None if left_s is None else left_s / (len(self.request.tasks) - index)

    def _training_time_left_s(self) -> float | None:
        """What the finished stages left of the time goal for training, s (None: no goal)."""
        b = self.budget
        if b.time_limit_s is None:
            return None
        spent_s = sum(rec.get("wall_s", 0.0) for rec in self.state["stages"].values() if rec.get("done"))
        return max(b.time_limit_s - b.export_reserve_s - spent_s, 0.0)

    def _task_reference(self, task, reference, patient, gait, folder: Path):
        """The motion the task imitates (:func:`~cloud_trainer.pipeline.predict.task_reference`), kept in the task's
        folder as ``reference.npz`` so that a resumed run and the export use the very same one."""
        from cloud_trainer.pipeline.predict import task_reference
        from cloud_trainer.pipeline.reference import save_reference

        saved = _load_task_reference(folder)
        if saved is not None:
            return saved
        motion = task_reference(task, reference, patient.anthropometry, gait)
        save_reference(motion, folder / TASK_REFERENCE_NAME)
        return motion

    def _task_result(self, folder: Path, task_ref) -> dict:
        """A finished task's summary, policies and ``task_ref``, the motion it imitated."""
        from cloud_trainer.pipeline.policy import load_policy

        summary = json.loads((folder / "curriculum.json").read_text())
        level_policies = {
            int(p.stem.split("_")[1]): load_policy(p) for p in sorted(folder.glob("level_*.pt"))
        }
        return {
            "summary": summary, "policy": load_policy(folder / "policy.pt"), "level_policies": level_policies,
            "reference": task_ref,
        }  # fmt: skip

    def _priors(self, reference, patient, gait, adapted_ppo: PPO) -> dict:
        """The patient pairs (behaviour cloning, GAIL) and the fitted BC proxy, computed once and kept on disk."""
        from cloud_trainer.learn.ppo import GaussianPolicy
        from cloud_trainer.pipeline.bc import BehaviourCloning
        from cloud_trainer.pipeline.predict import PatientPairs, collect_patient_pairs

        folder = self.out / "prediction"
        pairs_path, proxy_path = folder / "patient_pairs.npz", folder / "bc_proxy.pt"
        b = self.budget
        if pairs_path.exists() and proxy_path.exists():
            with np.load(pairs_path) as data:
                pairs = PatientPairs(data["obs"], data["actions"], data["mean_actions"])
            state = torch.load(proxy_path, map_location="cpu", weights_only=True)
            proxy = GaussianPolicy(pairs.obs.shape[1], pairs.actions.shape[1], b.ppo_args())
            proxy.load_state_dict(state["policy"])
            return {"pairs": pairs, "bc_proxy": proxy.eval(), "bc_fit": state["fit"]}
        self._emit(Stage.PREDICTION, "behavioural prior: patient pairs and the behaviour-cloning proxy")
        t0 = time.monotonic()
        pairs = collect_patient_pairs(
            adapted_ppo, reference, patient.anthropometry, gait, n_envs=b.pairs_envs, n_steps=b.pairs_steps,
            seed=self.request.seed + 7,
        )  # fmt: skip
        tmp = folder / ".patient_pairs.tmp.npz"
        np.savez(tmp, obs=pairs.obs, actions=pairs.actions, mean_actions=pairs.mean_actions)
        os.replace(tmp, pairs_path)
        bc = BehaviourCloning(b.ppo_args(), n_epochs=b.bc_epochs, seed=self.request.seed).fit(
            pairs.obs, pairs.mean_actions
        )
        fit = {
            "n_pairs": bc.n_pairs_, "train_mse": bc.train_mse_, "holdout_mse": bc.holdout_mse_,
            "baseline_mse": bc.baseline_mse_,
            "pairs": "the adapted patient policy's deterministic actions on the states of its own flat-ground "
            "rollouts at the patient's goals (no activations are measured)",
        }  # fmt: skip
        from cloud_trainer.learn.train import save_atomic

        save_atomic({"policy": bc.policy_.state_dict(), "fit": fit}, proxy_path)
        self._finish_stage("behavioural_prior", time.monotonic() - t0, None, bc=fit)
        return {"pairs": pairs, "bc_proxy": bc.policy_, "bc_fit": fit}

    def _flat_return(self, reference, patient, gait, adapted_ppo: PPO) -> float:
        """The patient's flat-ground return (the curriculum's reference): the adapted policy on flat ground at the
        patient's goals, episodes as long as the tasks', judged as the curriculum judges the tasks' (deterministic
        actions, one episode on each of ``reference_return_episodes`` simulations); measured once."""
        from cloud_trainer.pipeline.adapt import make_adaptation_env
        from cloud_trainer.pipeline.predict import deterministic_episodes, flat_ground_config

        path = self.out / "prediction" / "flat_return.json"
        if path.exists():
            return float(json.loads(path.read_text())["mean_return"])
        b = self.budget
        config = flat_ground_config(gait, b.task_episode_steps)
        env = make_adaptation_env(
            reference, patient.anthropometry, config, b.reference_return_episodes, self.request.seed + 3, ENV_THREADS
        )
        try:
            returns, fell = deterministic_episodes(env, adapted_ppo)
        finally:
            env.close()
        mean = float(np.mean(returns))
        write_json_atomic(path, {"mean_return": mean, "n_episodes": len(returns), "fall_fraction": float(np.mean(fell)),
                                  "episode_steps": config.episode_steps, "terrain": config.terrain,
                                  "policy": "adapted, deterministic actions"})  # fmt: skip
        return mean

    def _manifest(self, config, patient, reference, task, trainer, extra: dict) -> dict:
        from cloud_trainer.atlas.weights import manifest

        return manifest(config, {
            "task": task,
            "anthropometry": dataclasses.asdict(patient.anthropometry),
            "patient": {"pseudonym": patient.pseudonym, "affected_side": patient.affected_side},
            "references": [{"name": reference.name, "speed_m_s": reference.speed_m_s,
                            "stride_length_m": reference.stride_length_m, "source": reference.source}],
            "method": self.request.method,
            "training": dataclasses.asdict(trainer.counters_) if trainer is not None else None,
            **extra,
        })  # fmt: skip

    # ------------------------------------------------------------------ export

    def _export(self, reference, patient, gait, ref_summary, adapted_ppo, adaptation, tasks) -> PipelineResult:
        t0 = time.monotonic()
        training = self._training_record(ref_summary, adaptation, tasks)
        write_json_atomic(self.out / TRAINING_NAME, training)
        artifacts = [_artifact(self.out, self.out / TRAINING_NAME, "log")]
        self._emit(Stage.EXPORT, "evaluating, exporting and rendering")
        from cloud_trainer.pipeline import outputs

        result = outputs.export_outputs(
            self.out,
            patient=outputs.PatientInfo(
                patient.pseudonym, patient.anthropometry,
                patient.affected_side if patient.affected_side in ("left", "right") else None,
                gait.speed_m_s, gait.stride_length_m,
            ),
            references=[reference],
            level_ground_policy=adapted_ppo,
            tasks=[self._task_output(outputs, task, info, gait) for task, info in tasks.items()],
            options=outputs.ExportOptions.for_budget(self.request.budget),
            run=training,
            on_progress=self.on_progress,
            cancel=self.cancel,
        )  # fmt: skip
        report = result.report
        artifacts += result.artifacts
        self._finish_stage("export", time.monotonic() - t0)
        training = self._training_record(ref_summary, adaptation, tasks)
        write_json_atomic(self.out / TRAINING_NAME, training)
        artifacts[0] = _artifact(self.out, self.out / TRAINING_NAME, "log")
        self._emit(Stage.DONE, "done")
        return PipelineResult(self.out, report, artifacts, resumed=self.resumed)

    def _task_output(self, outputs, task: str, info: dict, gait):
        from cloud_trainer.pipeline.predict import task_config

        summary = info["summary"]
        curriculum = summary["curriculum"]
        levels = tuple(range(1, 6))
        goal = summary["goal"]
        return outputs.TaskOutput(
            task=task,
            policy=info["policy"],
            levels=levels,
            level_policies=info["level_policies"],
            configs={lv: task_config(task, lv, gait, episode_steps=self.budget.task_episode_steps) for lv in levels},
            goal=(goal["speed_m_s"], goal["stride_length_m"]),
            trained_level=max(curriculum["level"], 1),
            references=(info["reference"],),
            training={
                "levels_mastered": curriculum["levels_mastered"],
                "complete": curriculum["complete"],
                "samples": summary["training"]["samples"],
                "wall_s": summary["training"]["wall_s"],
                "stopped": summary["training"]["stopped"],
                "curriculum": curriculum,
            },
        )

    def _training_record(self, ref_summary, adaptation, tasks) -> dict:
        stages = self.state["stages"]
        return _jsonable({
            "schema": TRAINING_FORMAT,
            "request": self.state["request"],
            "budget": dataclasses.asdict(self.budget),
            "invocations": self.state["invocations"],
            "stages": {name: dict(rec) for name, rec in stages.items()},
            "total_wall_s": round(sum(rec.get("wall_s", 0.0) for rec in stages.values()), 2),
            "total_samples": sum(int(stages.get(n, {}).get("samples", 0)) for n in self._training_stage_names()),
            "levels_reached": {t: info["summary"]["curriculum"]["levels_mastered"] for t, info in tasks.items()},
            "peak_rss_mb": round(max(float(self.state.get("peak_rss_mb") or 0.0), peak_rss_mb()), 1),
            "reference": ref_summary,
            "adaptation": {k: adaptation.get(k) for k in ("summary", "reference_adaptation", "initialised_from",
                                                            "n_episodes", "training")},
            "prediction": {t: info["summary"] for t, info in tasks.items()},
            "threads": {"mujoco": ENV_THREADS, "torch": {
                "outside_updates": INFERENCE_THREADS, "update_candidates": list(thread_candidates()),
                "updates": "chosen per update by measured time; updates per count in each stage's training"}},
        })  # fmt: skip


# ---------------------------------------------------------------------------------------------------- helpers


def _last_gail(rows: list[dict]) -> dict | None:
    keys = [k for k in (rows[-1] if rows else {}) if k.startswith("gail/")]
    return {k: rows[-1][k] for k in keys} if keys else None


def _artifact(out: Path, path: Path, kind: str, task: str | None = None, level: int | None = None) -> Artifact:
    return Artifact(kind, path.relative_to(out), task, level, file_sha256(path), path.stat().st_size)


def _jsonable(value: Any) -> Any:
    """Strict-JSON-ready (numpy scalars and arrays to numbers and lists, NaN and inf to None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _load_task_reference(folder: Path):
    """The motion a task imitated, as kept in its folder; None where the folder holds none."""
    from cloud_trainer.pipeline.reference import load_reference

    path = folder / TASK_REFERENCE_NAME
    return load_reference(path) if path.exists() else None
