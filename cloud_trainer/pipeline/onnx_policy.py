"""Run an exported StrideTwin policy with ONNX Runtime: ``OnnxPolicy(path).act(obs)``.

Self-contained on purpose: numpy, onnxruntime and the standard library only (no torch, nothing else of
``cloud_trainer``), so that the bedside app can run a patient's policies offline from the results library by
vendoring or sharing this one file. The manifest beside the model (``<name>.json``, schema
``stridetwin.onnx-policy/2``, docs/patient-outputs.md) describes the observation the policy expects and what its
outputs mean; the model file's SHA-256 is checked against it on load.

```python
policy = OnnxPolicy("policy_stairs.onnx")
action = policy.act(obs)            # obs (249,) or (n, 249) float32 → (22,) or (n, 22) in [-1, 1]
outputs = policy.run(obs)           # {"action", "target_residual_rad", "torque_limit_fraction"}
policy.manifest["observation"]["layout"]
```
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

#: /2: the reference's clock can follow the walker (``reference_clock``, stairs with risers).
MANIFEST_SCHEMA = "stridetwin.onnx-policy/2"


class OnnxPolicyError(Exception):
    """An exported policy that cannot be used: missing or damaged files, another schema, wrong observation width."""


def manifest_path_for(onnx_path: Path) -> Path:
    """The manifest beside a model: ``policy_stairs.onnx`` → ``policy_stairs.json``."""
    return Path(onnx_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    # Its own copy of cloud_trainer.hashing.file_sha256: this module imports nothing else of the project, so that the
    # bedside can run it alone (tests/cloud_trainer/pipeline/test_onnx.py::test_runner_needs_no_torch).
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxPolicy:
    """An exported policy and its manifest.

    Args:
        onnx_path: the ``.onnx`` file; its manifest is read from beside it unless ``manifest`` is given.
        manifest: the manifest document, if already loaded.
        n_threads: ONNX Runtime intra-op threads (1: a small MLP gains nothing from more).

    Raises:
        OnnxPolicyError: a missing model or manifest, another manifest schema, a checksum mismatch, or a model
            ONNX Runtime cannot load.
    """

    def __init__(self, onnx_path: Path | str, manifest: dict | None = None, *, n_threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise OnnxPolicyError(f"{self.path}: no such ONNX policy file")
        if manifest is None:
            mpath = manifest_path_for(self.path)
            try:
                manifest = json.loads(mpath.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise OnnxPolicyError(f"{mpath}: the policy's manifest is missing") from None
            except (OSError, ValueError) as exc:
                raise OnnxPolicyError(f"{mpath}: unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
            found = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
            raise OnnxPolicyError(f"{self.path}: expected a {MANIFEST_SCHEMA!r} manifest, found {found!r}")
        expected = manifest.get("sha256")
        actual = file_sha256(self.path)
        if expected != actual:
            raise OnnxPolicyError(
                f"{self.path}: SHA-256 {actual} does not match the manifest's {expected} (damaged or replaced file)"
            )
        self.manifest = manifest
        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad models
            raise OnnxPolicyError(f"{self.path}: ONNX Runtime cannot load it ({exc})") from None
        self.input_name = self._session.get_inputs()[0].name
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.observation_width = int(manifest["observation"]["width"])

    def run(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the graph for observations (width,) or (n, width).

        Raises:
            OnnxPolicyError: observations of another width.
        """
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        if x.ndim != 2 or x.shape[1] != self.observation_width:
            width = self.observation_width
            raise OnnxPolicyError(f"observations must be ({width},) or (n, {width}), got shape {np.shape(obs)}")
        outputs = self._session.run(None, {self.input_name: x})
        return {name: (out[0] if single else out) for name, out in zip(self.output_names, outputs, strict=True)}

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action in [-1, 1] (clipped in the graph), (22,) or (n, 22)."""
        return self.run(obs)["action"]
