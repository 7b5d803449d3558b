"""Patient policy files: the adapted policy and one task policy per task, with their manifests.

Format ``stridetwin.policy/1``: the atlas's weights layout (``docs/atlas.md``, "Weights file": ``ppo_args``,
``policy`` with its observation normaliser, ``value``, ``manifest``) under its own format tag, so a patient's policy
is never mistaken for the shipped atlas. The manifest is the atlas's (observation and action layout, action scaling,
control period, task configuration) plus the patient's anthropometry (model scaling), the reference and the training
counters. :func:`load_policy` validates like :func:`~cloud_trainer.atlas.weights.load_atlas` and returns the same
:class:`~cloud_trainer.atlas.weights.AtlasPolicy` (``act``, ``to_ppo``), which the exporters read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from cloud_trainer.atlas.weights import AtlasPolicy, AtlasWeightsError
from cloud_trainer.envs.constants import ACTION_LAYOUT, ACTION_WIDTH, FRAME_LAYOUT, N_STACKED_FRAMES, OBSERVATION_WIDTH
from cloud_trainer.learn.ppo import PPO, GaussianPolicy
from cloud_trainer.learn.train import ppo_args_from_dict, save_atomic

POLICY_FORMAT = "stridetwin.policy/1"


def save_policy(ppo: PPO, path: Path, manifest: dict) -> None:
    """Write a patient policy atomically (the policy with its normaliser, the value function, the manifest)."""
    save_atomic(
        {
            "format": POLICY_FORMAT,
            "ppo_args": dataclasses.asdict(ppo.args),
            "policy": ppo.policy.state_dict(),
            "value": ppo.value.state_dict(),
            "manifest": manifest,
        },
        Path(path),
    )


def load_policy(path: Path) -> AtlasPolicy:
    """Read a policy written by :func:`save_policy`.

    Raises:
        AtlasWeightsError: missing, unreadable, another format, another observation or action layout, non-finite.
    """
    path = Path(path)
    if not path.is_file():
        raise AtlasWeightsError(f"{path}: no such policy file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file raises many types
        raise AtlasWeightsError(f"{path}: not a readable policy file ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != POLICY_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise AtlasWeightsError(f"{path}: expected a {POLICY_FORMAT!r} file, found {found!r}")
    meta = state.get("manifest") or {}
    expected = {
        "observation_layout": [list(item) for item in FRAME_LAYOUT],
        "n_stacked_frames": N_STACKED_FRAMES,
        "action_layout": [list(item) for item in ACTION_LAYOUT],
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            raise AtlasWeightsError(f"{path}: built for {key} {meta.get(key)!r}, this version has {value!r}")
    try:
        args = ppo_args_from_dict(state["ppo_args"])
        policy = GaussianPolicy(OBSERVATION_WIDTH, ACTION_WIDTH, args)
        policy.load_state_dict(state["policy"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise AtlasWeightsError(f"{path}: damaged policy file ({type(exc).__name__}: {exc})") from None
    for name, tensor in policy.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise AtlasWeightsError(f"{path}: damaged policy file (non-finite values in {name})")
    policy.eval()
    return AtlasPolicy(policy=policy, ppo_args=args, manifest=meta, path=path, state=state)


def ppo_from_policy(policy: AtlasPolicy, args=None) -> PPO:
    """A :class:`PPO` whose policy and value function start from ``policy`` (fresh optimisers); ``args`` (a
    :class:`~cloud_trainer.learn.ppo.PPOArgs` with the same network sizes) may change rollout sizes and step sizes."""
    ppo = PPO(OBSERVATION_WIDTH, ACTION_WIDTH, args or policy.ppo_args)
    ppo.policy.load_state_dict(policy.state["policy"])
    ppo.value.load_state_dict(policy.state["value"])
    return ppo
