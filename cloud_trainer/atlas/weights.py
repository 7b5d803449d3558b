"""The atlas weights file: the policy (with its observation normaliser), the value function, and a manifest.

Format ``stridetwin.atlas/1``, a ``torch.save`` dictionary read with ``weights_only=True`` (no code is executed on
load):

| key | content |
|---|---|
| ``format`` | ``"stridetwin.atlas/1"`` |
| ``ppo_args`` | the :class:`~cloud_trainer.learn.ppo.PPOArgs` the networks were built with (dict) |
| ``policy`` | state dict of :class:`~cloud_trainer.learn.ppo.GaussianPolicy` (normaliser statistics included) |
| ``value`` | state dict of the value function (for fine-tuning, e.g. atlas-to-patient adaptation) |
| ``manifest`` | observation layout and width, action layout, action scaling, control period, goal ranges, task, |
| | anthropometry, reference clips and library checksum, training counters and command |

Everything an exported policy needs is in the manifest (STYLE.md: "every exported policy ships a manifest").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.constants import (
    ACTION_LAYOUT,
    ACTION_WIDTH,
    CONTROL_PERIOD_S,
    FRAME_LAYOUT,
    N_STACKED_FRAMES,
    OBSERVATION_WIDTH,
)
from cloud_trainer.errors import TrainerError
from cloud_trainer.learn.ppo import PPO, GaussianPolicy, PPOArgs
from cloud_trainer.learn.train import ppo_args_from_dict, save_atomic

ATLAS_FORMAT = "stridetwin.atlas/1"
#: The weights that ship with the project.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "atlas.pt"


class AtlasWeightsError(TrainerError):
    """An atlas weights file that is missing, damaged, of another format, or built for other observations."""


def manifest(config: LocomotionConfig, extra: dict) -> dict:
    """The manifest of a policy trained on a task with ``config``; ``extra`` adds provenance."""
    return {
        "observation_layout": [list(item) for item in FRAME_LAYOUT],
        "n_stacked_frames": N_STACKED_FRAMES,
        "observation_width": OBSERVATION_WIDTH,
        "action_layout": [list(item) for item in ACTION_LAYOUT],
        "action_width": ACTION_WIDTH,
        "residual_scale_rad": config.residual_scale_rad,
        "torque_fraction_range": list(config.torque_fraction_range),
        "control_period_s": CONTROL_PERIOD_S,
        "task_config": task_config_document(config),
        **extra,
    }


def save_atlas(ppo: PPO, path: Path, manifest_: dict) -> None:
    """Write the atlas weights atomically."""
    save_atomic(
        {
            "format": ATLAS_FORMAT,
            "ppo_args": dataclasses.asdict(ppo.args),
            "policy": ppo.policy.state_dict(),
            "value": ppo.value.state_dict(),
            "manifest": manifest_,
        },
        Path(path),
    )


@dataclass
class AtlasPolicy:
    """A loaded atlas: the policy network (deterministic use: ``policy(obs)``), its arguments and manifest."""

    policy: GaussianPolicy
    ppo_args: PPOArgs
    manifest: dict
    path: Path
    #: The full file contents (value function included), for fine-tuning.
    state: dict

    @torch.inference_mode()
    def act(self, obs) -> torch.Tensor:
        """Deterministic actions (the Gaussian's mean) for raw observations (n, OBSERVATION_WIDTH)."""
        return self.policy(torch.as_tensor(obs, dtype=torch.float32))

    def to_ppo(self, args: PPOArgs | None = None) -> PPO:
        """A :class:`PPO` initialised from these weights (fresh optimisers), to continue training from the atlas;
        ``args`` (the same network sizes) may change rollout sizes and step sizes."""
        return self.load_into(PPO(OBSERVATION_WIDTH, ACTION_WIDTH, args or self.ppo_args))

    def load_into(self, ppo: PPO) -> PPO:
        """``ppo`` with its policy (normaliser included) and value function set to these weights; returns it."""
        ppo.policy.load_state_dict(self.state["policy"])
        ppo.value.load_state_dict(self.state["value"])
        return ppo


def load_atlas(path: Path | None = None) -> AtlasPolicy:
    """Load atlas weights (default: the shipped ones).

    Raises:
        AtlasWeightsError: the file is missing, not a readable torch file, not an atlas file, or built for another
            observation or action layout (the message says which and what was expected).
    """
    path = Path(path) if path is not None else SHIPPED_WEIGHTS
    if not path.is_file():
        hint = " (the shipped atlas is missing: train one with `stridetwin atlas train`)"
        hint = hint if path == SHIPPED_WEIGHTS else ""
        raise AtlasWeightsError(f"{path}: no such weights file{hint}")
    return read_policy_file(path, ATLAS_FORMAT, "atlas weights", "written by `stridetwin atlas train`",
                            "retrain the atlas")  # fmt: skip


def read_policy_file(path: Path, file_format: str, kind: str, written_by: str, remedy: str) -> AtlasPolicy:
    """Read and validate a policy file of ``file_format`` (the atlas's layout: ``ppo_args``, ``policy``, ``value``,
    ``manifest``); ``kind``, ``written_by`` and ``remedy`` word the errors.

    Raises:
        AtlasWeightsError: not a readable torch file, another format, built for another observation or action
            layout, damaged state, or non-finite weights (the message says which and what was expected).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged files raise many types (pickle, zip, EOF, runtime)
        raise AtlasWeightsError(
            f"{path}: not a readable {kind} file ({type(exc).__name__}: {_first_line(exc)}); expected a "
            f"{file_format!r} file {written_by}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != file_format:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise AtlasWeightsError(f"{path}: expected a {file_format!r} {kind} file, found {found!r}")
    meta = state.get("manifest") or {}
    expected = {
        "observation_layout": [list(item) for item in FRAME_LAYOUT],
        "n_stacked_frames": N_STACKED_FRAMES,
        "action_layout": [list(item) for item in ACTION_LAYOUT],
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            raise AtlasWeightsError(
                f"{path}: built for {key} {meta.get(key)!r}, but this version's environment has {value!r}; {remedy}"
            )
    try:
        args = ppo_args_from_dict(state["ppo_args"])
        policy = GaussianPolicy(OBSERVATION_WIDTH, ACTION_WIDTH, args)
        policy.load_state_dict(state["policy"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise AtlasWeightsError(f"{path}: damaged {kind} ({type(exc).__name__}: {_first_line(exc)})") from None
    for name, tensor in policy.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise AtlasWeightsError(f"{path}: damaged {kind} (non-finite values in {name})")
    policy.eval()
    return AtlasPolicy(policy=policy, ppo_args=args, manifest=meta, path=path, state=state)


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message (torch's unpickling errors run to a page of advice)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def task_config_document(config: LocomotionConfig) -> dict:
    """A task configuration as a JSON-ready dictionary (tuples as lists, keys as strings), for manifests."""
    return _jsonable(dataclasses.asdict(config))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
