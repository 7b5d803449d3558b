"""Joint angles from segment orientations, per the ISB joint coordinate systems, in degrees.

Conventions (docs/joint-angles.md has the table; they equal the virtual patient's truth,
``sensor_drivers/sim/truth.py``):

- **Hip** (Wu et al. 2002, J Biomech 35:543, hip JCS) and **knee** (Grood & Suntay 1983, J Biomech Eng 105:136):
  the distal segment relative to the proximal one, ``R = R_proximalᵀ R_distal``, decomposed as Cardan angles
  ``R = R_y(α) R_x(β) R_z(γ)`` in our axes (x anterior, y left, z superior): α about the proximal medio-lateral axis
  (ISB e1, flexion), β about the floating axis (e2, ab/adduction), γ about the distal long axis (e3, rotation).
  ISB's axes are X anterior, Y superior, Z right; ours are the same directions relabelled (ISB Z = −our y), so the
  JCS sequence e1-e2-e3 is our y-x-z. Signs (ISB, both sides reading the same): hip flexion + (= −α: flexing the
  hip turns the thigh by a negative angle about our left-pointing y), hip adduction + (right: +β, left: −β), hip
  internal rotation + (right: +γ, left: −γ), knee flexion + (= +α).
- **Pelvis** relative to the walkway world (x along the walk, y left, z up) in the rotation-obliquity-tilt order of
  Baker (2001, Gait Posture 13:1): ``R_world_pelvis = R_z(rotation) R_x(obliquity) R_y(tilt)``. Signs: tilt +
  anterior, obliquity + left side up, rotation + turning left (right side forward).

Names (columns of ``stridetwin analyze --angles-csv``): :data:`ANGLE_NAMES`. Missing segments leave their angles
out, with a verdict saying why; NaN orientation rows give NaN angles.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from capture_app.core.verdict import Level, Verdict

FloatArray = NDArray[np.float64]

#: Every angle the capture core reports, in the order of the angle CSV.
ANGLE_NAMES: tuple[str, ...] = (
    "pelvis_tilt_deg", "pelvis_obliquity_deg", "pelvis_rotation_deg",
    "hip_flexion_l_deg", "hip_adduction_l_deg", "hip_rotation_l_deg",
    "hip_flexion_r_deg", "hip_adduction_r_deg", "hip_rotation_r_deg",
    "knee_flexion_l_deg", "knee_flexion_r_deg",
)  # fmt: skip

#: Segments each group of angles needs.
NEEDS: dict[str, tuple[str, ...]] = {
    "pelvis": ("pelvis",),
    "hip_l": ("pelvis", "thigh_l"),
    "hip_r": ("pelvis", "thigh_r"),
    "knee_l": ("thigh_l", "shank_l"),
    "knee_r": ("thigh_r", "shank_r"),
}
GROUP_ANGLES: dict[str, tuple[str, ...]] = {
    "pelvis": ("pelvis_tilt_deg", "pelvis_obliquity_deg", "pelvis_rotation_deg"),
    "hip_l": ("hip_flexion_l_deg", "hip_adduction_l_deg", "hip_rotation_l_deg"),
    "hip_r": ("hip_flexion_r_deg", "hip_adduction_r_deg", "hip_rotation_r_deg"),
    "knee_l": ("knee_flexion_l_deg",),
    "knee_r": ("knee_flexion_r_deg",),
}
_GROUP_WORDS = {"pelvis": "pelvis", "hip_l": "left hip", "hip_r": "right hip", "knee_l": "left knee",
                "knee_r": "right knee"}
_SEGMENT_WORDS = {"pelvis": "pelvis", "thigh_l": "left thigh", "thigh_r": "right thigh", "shank_l": "left shank",
                  "shank_r": "right shank"}


def cardan_yxz_rad(R: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(α, β, γ) with ``R = R_y(α) R_x(β) R_z(γ)``, rad. β in [-π/2, π/2]; gimbal lock at β = ±90° (not reached by
    hips and knees in walking)."""
    beta = np.arcsin(np.clip(-R[..., 1, 2], -1.0, 1.0))
    alpha = np.arctan2(R[..., 0, 2], R[..., 2, 2])
    gamma = np.arctan2(R[..., 1, 0], R[..., 1, 1])
    return alpha, beta, gamma


def cardan_zxy_rad(R: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(α, β, γ) with ``R = R_z(α) R_x(β) R_y(γ)``, rad."""
    beta = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    alpha = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    gamma = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    return alpha, beta, gamma


def joint_angles_deg(R_world_segment: dict[str, FloatArray]) -> tuple[dict[str, FloatArray], list[Verdict]]:
    """Angles (name → (N,) degrees) from ``R_world_segment`` (segment name → (N, 3, 3)) of whichever segments are
    given, and a verdict for each group left out. Segment names: ``pelvis``, ``thigh_l/r``, ``shank_l/r``."""
    out: dict[str, FloatArray] = {}
    verdicts: list[Verdict] = []
    for group, needs in NEEDS.items():
        missing = [seg for seg in needs if seg not in R_world_segment]
        if missing:
            names = " and ".join(_SEGMENT_WORDS[m] for m in missing)
            verdicts.append(Verdict(
                Level.WARNING, "angles.missing_segment",
                f"No {_GROUP_WORDS[group]} angles: the {names} orientation is not available.",
                f"Check the {names} sensor (connected, placed, and calibrated by a standing start and a walk).",
                subject=group, details={"missing": missing, "angles": list(GROUP_ANGLES[group])},
            ))
            continue
        out.update(_group(group, R_world_segment))
    return {name: out[name] for name in ANGLE_NAMES if name in out}, verdicts


def _group(group: str, R: dict[str, FloatArray]) -> dict[str, FloatArray]:
    if group == "pelvis":
        rotation, obliquity, tilt = cardan_zxy_rad(R["pelvis"])
        return {"pelvis_tilt_deg": np.degrees(tilt), "pelvis_obliquity_deg": np.degrees(obliquity),
                "pelvis_rotation_deg": np.degrees(rotation)}
    side = group[-1]
    mirror = 1.0 if side == "r" else -1.0
    if group.startswith("hip"):
        a, b, c = cardan_yxz_rad(np.swapaxes(R["pelvis"], -1, -2) @ R[f"thigh_{side}"])
        return {f"hip_flexion_{side}_deg": np.degrees(-a), f"hip_adduction_{side}_deg": np.degrees(mirror * b),
                f"hip_rotation_{side}_deg": np.degrees(mirror * c)}
    a, _, _ = cardan_yxz_rad(np.swapaxes(R[f"thigh_{side}"], -1, -2) @ R[f"shank_{side}"])
    return {f"knee_flexion_{side}_deg": np.degrees(a)}
