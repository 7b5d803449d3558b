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

from cloud_trainer.atlas.weights import AtlasPolicy, AtlasWeightsError, read_policy_file
from cloud_trainer.learn.ppo import PPO
from cloud_trainer.learn.train import save_atomic

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
    return read_policy_file(path, POLICY_FORMAT, "policy", "written by the patient pipeline",
                            "train the patient's policies again")  # fmt: skip

