"""``stridetwin atlas train|eval|ship``: train the Healthy Motion Atlas, evaluate atlas weights over a grid of goals,
and ship a run's weights into the project."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

#: Where ``atlas train`` writes by default (ignored by git).
DEFAULT_RUN_DIR = Path("runs") / "atlas"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "atlas",
        help="train or evaluate the Healthy Motion Atlas (goal-conditioned healthy walking policy)",
        description="The Healthy Motion Atlas: a policy that walks the twin at a target speed and stride length, "
        "imitating the healthy motion library (docs/atlas.md).",
    )
    actions = parser.add_subparsers(dest="atlas_command", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train",
        help="train (or continue training) the atlas",
        description="Train the atlas with PPO on flat ground (with --terrain: on flat ground, ramps and stairs). The "
        "run directory holds checkpoint.pt (resumable), train_log.jsonl and atlas.pt (the exported weights, rewritten "
        "at every checkpoint).",
    )
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--budget-samples", type=int, metavar="N", help="stop after N environment samples in total")
    budget.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes of this invocation")
    train.add_argument("--out", type=Path, default=DEFAULT_RUN_DIR, help=f"run directory (default {DEFAULT_RUN_DIR})")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--n-envs", type=int, help="parallel simulations (default 512; fixed by a run's checkpoint)")
    train.add_argument("--checkpoint-every", type=int, default=50, metavar="UPDATES", help="default 50")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--terrain", action="store_true",
        help="the terrain-aware atlas: flat ground, ramps and stairs at once (docs/atlas.md, \"Terrain-aware atlas\")",
    )  # fmt: skip
    train.add_argument(
        "--init", type=Path, metavar="WEIGHTS",
        help="start a new run from these atlas weights (e.g. the shipped cloud_trainer/atlas/weights/atlas.pt)",
    )  # fmt: skip
    train.set_defaults(func=run_train)

    evaluate = actions.add_parser(
        "eval",
        help="evaluate atlas weights over a grid of goals",
        description="Run the deterministic policy over a grid of (speed, stride length) goals on flat ground and "
        "report joint-angle, centre-of-mass and limb-end errors, speed and stride tracking, falls "
        "(schema stridetwin.atlas-eval/1, docs/atlas.md).",
    )
    evaluate.add_argument("--weights", type=Path, help="atlas weights (default: the shipped atlas)")
    evaluate.add_argument("--repeats", type=int, default=4, help="episodes per goal (default 4)")
    evaluate.add_argument("--duration-s", type=float, default=10.0, help="episode length, s (default 10)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument(
        "--courses", action="store_true",
        help="instead: walk each course of the terrain-aware atlas (--repeats episodes each, --duration-s long) and "
        "report falls, walks reaching the top and distance (schema stridetwin.atlas-courses/1)",
    )  # fmt: skip
    evaluate.add_argument("--json", action="store_true", help="print the stridetwin.atlas-eval/1 JSON document")
    evaluate.set_defaults(func=run_eval)

    ship = actions.add_parser(
        "ship",
        help="copy a run's weights into the project with its log summary, evaluation and TRAINING.md",
        description="Copy RUN/atlas.pt to cloud_trainer/atlas/weights/ (or --to) with train_log_summary.csv, eval.json "
        "and TRAINING.md (command, data, samples, wall-clock time, evaluation beside the reference atlas); a "
        "terrain-aware atlas also walks its courses (courses.json).",
    )
    ship.add_argument("--run", type=Path, default=DEFAULT_RUN_DIR, help=f"run directory (default {DEFAULT_RUN_DIR})")
    ship.add_argument("--to", type=Path, help="destination folder (default: the shipped weights' folder)")
    ship.add_argument("--repeats", type=int, default=4, help="evaluation episodes per goal (default 4)")
    ship.add_argument(
        "--course-repeats", type=int, default=16,
        help="walks per course of a terrain-aware atlas (default 16)",
    )  # fmt: skip
    ship.set_defaults(func=run_ship)


def run_train(args: argparse.Namespace) -> int:
    import dataclasses

    from cloud_trainer.atlas.terrain import TERRAIN_MIX
    from cloud_trainer.atlas.train import ATLAS_PPO_ARGS, WEIGHTS_NAME, train_atlas
    from cloud_trainer.errors import TrainerError
    from stridetwin.cli import CliError

    if args.budget_samples is not None and args.budget_samples < 1:
        raise CliError(f"--budget-samples must be ≥ 1, got {args.budget_samples}")
    if args.minutes is not None and not args.minutes > 0:
        raise CliError(f"--minutes must be > 0, got {args.minutes}")
    if args.init is not None and not args.init.is_file():
        raise CliError(f"--init {args.init}: no such atlas weights file")
    ppo_args = ATLAS_PPO_ARGS
    if args.n_envs is not None:
        if args.n_envs < 1:
            raise CliError(f"--n-envs must be ≥ 1, got {args.n_envs}")
        try:
            ppo_args = dataclasses.replace(ppo_args, n_envs=args.n_envs)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    command = shlex.join(["stridetwin", *sys.argv[1:]]) if sys.argv[1:2] == ["atlas"] else ""
    try:
        trainer = train_atlas(
            args.out,
            budget_samples=args.budget_samples,
            budget_s=None if args.minutes is None else 60.0 * args.minutes,
            resume=args.resume,
            ppo_args=ppo_args,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
            command=command,
            mix=TERRAIN_MIX if args.terrain else None,
            init_from=args.init,
        )
    except TrainerError as exc:
        raise CliError(str(exc)) from None
    c = trainer.counters_
    print(
        f"stopped ({trainer.stop_reason_}) after {c.updates} updates, {c.samples} samples, {c.wall_s / 60:.1f} min; "
        f"weights {args.out / WEIGHTS_NAME}"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from cloud_trainer.atlas.evaluate import evaluate_atlas
    from cloud_trainer.atlas.references import atlas_references
    from cloud_trainer.atlas.terrain import evaluate_courses
    from cloud_trainer.atlas.weights import load_atlas
    from cloud_trainer.errors import TrainerError
    from cloud_trainer.twin.model import build_twin
    from stridetwin.cli import CliError

    if args.repeats < 1:
        raise CliError(f"--repeats must be ≥ 1, got {args.repeats}")
    if not args.duration_s > 0:
        raise CliError(f"--duration-s must be > 0, got {args.duration_s}")
    try:
        atlas = load_atlas(args.weights)
        references = atlas_references(build_twin().model)
        if args.courses:
            doc = evaluate_courses(atlas, references, n_per_course=args.repeats, duration_s=args.duration_s,
                                   seed=args.seed)  # fmt: skip
        else:
            doc = evaluate_atlas(atlas, references, n_repeats=args.repeats, duration_s=args.duration_s, seed=args.seed)
    except TrainerError as exc:
        raise CliError(str(exc)) from None
    if args.courses and not args.json:
        for c in doc["courses"]:
            top = "" if c["reached_top"] is None else f", reached the top {c['reached_top']:.0%}"
            print(f"{c['course']:>9}: fell {c['fell']:.0%}{top}, walked {c['distance_m']:.1f} m")
    elif args.json:
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        print(format_text(doc))
    return 0


def run_ship(args: argparse.Namespace) -> int:
    from cloud_trainer.atlas.ship import ship_atlas
    from cloud_trainer.atlas.weights import SHIPPED_WEIGHTS
    from cloud_trainer.errors import TrainerError
    from stridetwin.cli import CliError

    for flag, value in (("--repeats", args.repeats), ("--course-repeats", args.course_repeats)):
        if value < 1:
            raise CliError(f"{flag} must be ≥ 1, got {value}")
    try:
        doc = ship_atlas(args.run, args.to, eval_repeats=args.repeats, course_repeats=args.course_repeats)
    except TrainerError as exc:
        raise CliError(str(exc)) from None
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: no such file (is {args.run} a run directory?)") from None
    print(f"shipped to {args.to or SHIPPED_WEIGHTS.parent}")
    print(format_text(doc))
    return 0


def format_text(doc: dict) -> str:
    """A short table of an evaluation document."""
    s, ref = doc["summary"], doc["reference_atlas"]
    lines = [
        f"atlas {doc['weights']}: {doc['n_episodes']} episodes ({doc['n_goals']} goals × {doc['n_repeats']}) of "
        f"{doc['episode_duration_s']:g} s, deterministic policy, flat ground",
        f"  joint-angle error {s['joint_angle_error_deg']} deg "
        f"(hips and knees {s['joint_angle_error_hips_knees_deg']}; reference atlas {ref['joint_angle_error_deg']})",
        f"  centre-of-mass error {s['com_error_cm']} cm (reference atlas {ref['com_error_cm']})",
        f"  limb-end error {s['limb_end_error_cm']} cm (reference atlas {ref['limb_end_error_cm']})",
        f"  speed error {s['speed_error_m_s']} m/s, stride-length error {s['stride_length_error_m']} m, "
        f"fall rate {s['fall_rate']}, mean episode {s['episode_length_s']} s",
        "",
        "  speed m/s  stride m  achieved m/s  achieved m  joint deg  CoM cm  ends cm  falls",
    ]
    for g in doc["goals"]:
        lines.append(
            f"  {g['speed_m_s']:9.2f}  {g['stride_length_m']:8.2f}  {_fmt(g['speed_achieved_m_s'], 12)}  "
            f"{_fmt(g['stride_length_achieved_m'], 10)}  {_fmt(g['joint_angle_error_deg'], 9)}  "
            f"{_fmt(g['com_error_cm'], 6)}  {_fmt(g['limb_end_error_cm'], 7)}  {_fmt(g['fall_rate'], 5)}"
        )
    return "\n".join(lines)


def _fmt(value: float | None, width: int) -> str:
    return "-".rjust(width) if value is None else f"{value:{width}.2f}"
