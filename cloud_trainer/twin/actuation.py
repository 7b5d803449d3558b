"""PD actuation of the twin: torque ceilings scaled to body mass, gains, and passive joint properties.

Each hinge has a MuJoCo ``position`` actuator, so the PD law ``tau = kp (q_target - q) - kv qdot`` is evaluated inside
every physics substep, and clipped to ``±forcerange``. The policy sets the targets and, per anatomical joint, the
fraction of the ceiling the clip allows (the paper's "upper limits of joint torques", Dai et al. 2025, Methods).

Ceilings (Nm per kg body mass, for a 1.75 m body) are about twice the largest net moments of healthy level walking and
stair ascent, so that balance recovery and the stair task are possible, and stay within healthy maximal voluntary
strength:

- level walking peaks (Winter 2009, "Biomechanics and Motor Control of Human Movement", ch. 5 gait data): ankle
  plantarflexor ≈ 1.6 Nm/kg, hip extensor/flexor ≈ 1.0, knee extensor ≈ 0.7, hip abductor ≈ 1.0 (frontal plane,
  Winter 1995, Gait Posture 3:193), hip rotation and subtalar moments ≈ 0.2-0.3;
- stair ascent raises the knee extensor moment to ≈ 1.2 Nm/kg (Riener, Rabuffetti & Frigo 2002, Gait Posture 15:32);
- maximal voluntary isometric torques of hip and knee extensors and ankle plantarflexors of healthy adults are about
  2-3 Nm/kg (Anderson, Madigan & Nussbaum 2007, J. Biomech. 40:3105).

They scale with mass × height / 1.75 m: joint moments scale with body weight times a length (Hof 1996, "Scaling gait
data to body size", Gait Posture 4:222). Scaling with mass alone left a 2.2 m model unable to stand on its PD gains
(gravity's toppling moment grows with height, the gains did not).

Gains: ``kp = ceiling / SATURATION_ANGLE_RAD`` (a 0.25 rad, 14° tracking error already commands the full ceiling,
stiff enough that the reference alone nearly stands), ``kv = KV_PER_KP_S * kp`` as DeepMimic's ``kd = kp / 10``
(Peng et al. 2018). The stiffest joint (ankle, kp ≈ 700 Nm/rad at 70 kg, reflected inertia ≈ 0.02 kg m²) has a
natural frequency ≈ 190 rad/s, so ``omega * dt`` ≈ 1 at the 1/180 s timestep: inside the semi-implicit Euler stability
bound of 2; the damping term is integrated implicitly (``implicitfast``), so ``kv`` adds no stability limit.

Armature and passive damping are numerical, not physiological: a small reflected inertia keeps light distal segments
(feet) well conditioned at the timestep, and a little viscous damping (well below the PD's ``kv``) damps chatter at
joint limits when the torque ceiling is turned down. Both scale with body size (mass × height² for armature, mass
for damping) from the 70 kg, 1.75 m values below.
"""

from __future__ import annotations

import numpy as np

from cloud_trainer.twin.constants import JOINT_NAMES

#: Torque ceilings per hinge, Nm per kg body mass (keys without side apply to both legs).
TORQUE_CEILING_NM_PER_KG: dict[str, float] = {
    "lumbar_extension": 1.5,
    "lumbar_bending": 1.5,
    "lumbar_rotation": 0.6,
    "hip_flexion": 2.0,
    "hip_adduction": 2.0,
    "hip_rotation": 0.6,
    "knee_flexion": 2.0,
    "ankle_dorsiflexion": 2.5,
    "ankle_inversion": 0.6,
}
#: Tracking error (rad) at which the PD command reaches the torque ceiling.
SATURATION_ANGLE_RAD = 0.25
#: Derivative gain per proportional gain (s).
KV_PER_KP_S = 0.1
#: Armature (kg m²) and passive damping (N m s/rad) for a 70 kg, 1.75 m body.
REFERENCE_MASS_KG, REFERENCE_HEIGHT_M = 70.0, 1.75
ARMATURE_KG_M2 = {"lumbar": 0.02, "hip": 0.02, "knee": 0.02, "ankle": 0.01}
DAMPING_NM_S_RAD = {"lumbar": 1.0, "hip": 0.5, "knee": 0.5, "ankle": 0.3}


def generic_joint_name(joint: str) -> str:
    """``hip_flexion_r`` → ``hip_flexion``; lumbar names are returned unchanged."""
    return joint[:-2] if joint.endswith(("_r", "_l")) else joint


def _region(joint: str) -> str:
    return joint.split("_")[0]


def torque_ceilings_nm(mass_kg: float, height_m: float) -> np.ndarray:
    """Torque ceiling of every hinge in ``JOINT_NAMES`` order, N m (Hof 1996 scaling: mass × height)."""
    scale = mass_kg * height_m / REFERENCE_HEIGHT_M
    return np.array([TORQUE_CEILING_NM_PER_KG[generic_joint_name(j)] * scale for j in JOINT_NAMES])


def pd_gains(mass_kg: float, height_m: float) -> tuple[np.ndarray, np.ndarray]:
    """``(kp, kv)`` of every hinge in ``JOINT_NAMES`` order: N m/rad and N m s/rad."""
    kp = torque_ceilings_nm(mass_kg, height_m) / SATURATION_ANGLE_RAD
    return kp, KV_PER_KP_S * kp


def armature_kg_m2(mass_kg: float, height_m: float) -> np.ndarray:
    """Armature of every hinge, scaled with mass × height² from the reference body."""
    scale = mass_kg / REFERENCE_MASS_KG * (height_m / REFERENCE_HEIGHT_M) ** 2
    return np.array([ARMATURE_KG_M2[_region(j)] * scale for j in JOINT_NAMES])


def damping_nm_s_rad(mass_kg: float) -> np.ndarray:
    """Passive viscous damping of every hinge, scaled with mass from the reference body."""
    return np.array([DAMPING_NM_S_RAD[_region(j)] * mass_kg / REFERENCE_MASS_KG for j in JOINT_NAMES])
