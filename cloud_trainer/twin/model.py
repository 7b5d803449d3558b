"""The patient's digital twin: a MuJoCo lower-limb model generated with ``mujoco.MjSpec``, scaled to the patient.

Seven bodies (pelvis with a free joint; torso on a 3-DoF lumbar joint; thighs on 3-DoF hips; shanks on knees; feet
on 2-DoF ankles), a PD position actuator per hinge (:mod:`cloud_trainer.twin.actuation`), contact sensors for the
feet and for every other body against the terrain, and the terrain's geoms (:mod:`cloud_trainer.twin.terrain`).

Feet: the collision shape is two mediolateral capsules, one under the heel and one under the metatarsophalangeal
(MTP) line, so that the sole rolls from heel to forefoot on four contact points (a capsule on a plane touches at its
two end spheres) and rests on a rectangle when flat; capsules do not catch on stair nosings as box corners do.
Mass properties are explicit (de Leva 1996, :mod:`cloud_trainer.twin.anthropometry`); geoms only collide and render.

Physics: ``implicitfast`` integration at ``PHYSICS_TIMESTEP_S`` (1/180 s: six substeps give exactly the paper's 30 Hz
control), Newton solver, pyramidal friction cones, friction 1.0 between sole and ground.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from cloud_trainer.twin import actuation
from cloud_trainer.twin.anthropometry import Anthropometry, BodyDimensions, body_dimensions
from cloud_trainer.twin.constants import (
    BODY_NAMES,
    HEAD_TOP_SITE,
    JOINT_AXES,
    JOINT_NAMES,
    JOINT_RANGES_DEG,
    STAND_KEYFRAME,
)
from cloud_trainer.twin.terrain import (
    CONTACT_SOLIMP,
    CONTACT_SOLREF,
    GROUND_FRICTION,
    TERRAIN_CONAFFINITY,
    TERRAIN_CONTYPE,
    Terrain,
    get_terrain,
)

#: Physics timestep: 1/180 s, so that ``CONTROL_SUBSTEPS`` substeps make one 30 Hz control period exactly.
PHYSICS_TIMESTEP_S = 1.0 / 180.0
#: Body geoms collide with terrain geoms only (mirror of the terrain's bits): no self-collision.
BODY_CONTYPE, BODY_CONAFFINITY = TERRAIN_CONAFFINITY, TERRAIN_CONTYPE
#: Geom group of the body's collision geoms and of its purely visual geoms.
BODY_GEOM_GROUP, VISUAL_GEOM_GROUP = 0, 1
#: Geom sizes relative to a 1.75 m body (capsule radii), scaled with height.
RADIUS_M = {
    "pelvis": 0.075, "torso": 0.10, "head": 0.09, "thigh": 0.065, "shank": 0.045, "heel": 0.025, "forefoot": 0.02
}
#: Forefoot contact line (MTP) from the heel, as a fraction of heel-to-toe length.
MTP_PER_FOOT_LENGTH = 0.75
#: Name of the contact sensor of a body against the terrain, formatted with the body name.
CONTACT_SENSOR = "contact_{}"
SKIN_RGBA = (0.85, 0.7, 0.6, 1.0)


@dataclass(frozen=True)
class Twin:
    """A compiled model with the numbers it was built from."""

    model: mujoco.MjModel
    dimensions: BodyDimensions
    terrain: Terrain
    #: Torque ceiling of each hinge (JOINT_NAMES order), N m.
    torque_ceiling_nm: np.ndarray
    #: Joint ranges (JOINT_NAMES order), rad, (N_JOINTS, 2).
    joint_range_rad: np.ndarray

    @property
    def anthropometry(self) -> Anthropometry:
        return self.dimensions.anthropometry

    def stand_qpos(self) -> np.ndarray:
        """qpos of the standing keyframe (neutral pose, soles on the floor at x = y = 0)."""
        return self.model.key(STAND_KEYFRAME).qpos.copy()


def joint_range_rad(joint: str) -> tuple[float, float]:
    """Range of motion of a hinge, rad."""
    lo, hi = JOINT_RANGES_DEG[actuation.generic_joint_name(joint)]
    return float(np.deg2rad(lo)), float(np.deg2rad(hi))


def build_spec(anthropometry: Anthropometry | None = None, terrain: str | Terrain = "flat") -> mujoco.MjSpec:
    """The model's spec, for a patient and a course (a name from ``TERRAIN_NAMES`` or a :class:`Terrain`).

    Raises:
        AnthropometryError: implausible measurements (via :class:`Anthropometry`).
        UnknownNameError: an unknown terrain name.
    """
    anthropometry = anthropometry or Anthropometry()
    course = terrain if isinstance(terrain, Terrain) else get_terrain(terrain)
    dims = body_dimensions(anthropometry)
    scale = anthropometry.height_m / 1.75
    spec = mujoco.MjSpec()
    spec.modelname = "stridetwin"
    spec.compiler.degree = False
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_FALSE
    spec.option.timestep = PHYSICS_TIMESTEP_S
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    spec.option.solver = mujoco.mjtSolver.mjSOL_NEWTON
    spec.option.iterations = 50
    spec.option.ls_iterations = 20
    spec.visual.global_.offwidth, spec.visual.global_.offheight = 1280, 720
    light = spec.worldbody.add_light(name="sun", pos=[0.0, 0.0, 6.0], dir=[0.0, 0.0, -1.0])
    light.castshadow = False
    course.add_to_spec(spec)

    mass = anthropometry.mass_kg
    armature = dict(zip(JOINT_NAMES, actuation.armature_kg_m2(mass, anthropometry.height_m), strict=True))
    damping = dict(zip(JOINT_NAMES, actuation.damping_nm_s_rad(mass), strict=True))

    def add_body(parent: mujoco.MjsBody, name: str, pos) -> mujoco.MjsBody:
        body = parent.add_body(name=name, pos=list(pos))
        seg = dims.segments[name]
        body.explicitinertial = True
        body.mass, body.ipos, body.inertia = seg.mass_kg, list(seg.com_m), list(seg.inertia_kg_m2)
        return body

    def add_hinges(body: mujoco.MjsBody, joints) -> None:
        for joint in joints:
            hinge = body.add_joint(name=joint, type=mujoco.mjtJoint.mjJNT_HINGE, axis=list(JOINT_AXES[joint]))
            hinge.limited = mujoco.mjtLimited.mjLIMITED_TRUE
            hinge.range = list(joint_range_rad(joint))
            hinge.armature = float(armature[joint])
            hinge.damping = [float(damping[joint]), 0.0, 0.0]  # linear viscous term only

    def capsule(body: mujoco.MjsBody, name: str, start, end, radius: float) -> None:
        geom = body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[radius, 0.0, 0.0])
        geom.fromto = [*start, *end]
        _body_geom(geom)

    hip_z = dims.standing_hip_height_m
    pelvis = add_body(spec.worldbody, "pelvis", (0.0, 0.0, hip_z))
    pelvis.add_freejoint(name="root")
    half_hip = dims.hip_spacing_m / 2
    r = RADIUS_M["pelvis"] * scale
    capsule(pelvis, "pelvis", (0.0, half_hip, r * 0.5), (0.0, -half_hip, r * 0.5), r)
    pelvis.add_site(name="pelvis", pos=[0.0, 0.0, 0.0])
    pelvis.add_site(name="hip_r", pos=[0.0, -half_hip, 0.0])
    pelvis.add_site(name="hip_l", pos=[0.0, half_hip, 0.0])

    torso = add_body(pelvis, "torso", (0.0, 0.0, dims.lower_trunk_length_m))
    add_hinges(torso, JOINT_NAMES[:3])
    r = RADIUS_M["torso"] * scale
    capsule(torso, "torso", (0.0, 0.0, r), (0.0, 0.0, dims.upper_body_length_m - r), r)
    head_r = RADIUS_M["head"] * scale
    head = torso.add_geom(name="head", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[head_r, 0.0, 0.0])
    head.pos = [0.0, 0.0, dims.upper_body_length_m + dims.head_length_m - head_r]
    _body_geom(head)
    torso.add_site(name="spine_top", pos=[0.0, 0.0, dims.upper_body_length_m])
    torso.add_site(name=HEAD_TOP_SITE, pos=[0.0, 0.0, dims.upper_body_length_m + dims.head_length_m])

    for side, y in (("r", -half_hip), ("l", half_hip)):
        leg = [j for j in JOINT_NAMES if j.endswith(f"_{side}")]
        thigh = add_body(pelvis, f"thigh_{side}", (0.0, y, 0.0))
        add_hinges(thigh, leg[:3])
        r = RADIUS_M["thigh"] * scale
        capsule(thigh, f"thigh_{side}", (0.0, 0.0, -r), (0.0, 0.0, -dims.thigh_length_m + r), r)
        shank = add_body(thigh, f"shank_{side}", (0.0, 0.0, -dims.thigh_length_m))
        add_hinges(shank, leg[3:4])
        r = RADIUS_M["shank"] * scale
        capsule(shank, f"shank_{side}", (0.0, 0.0, -r), (0.0, 0.0, -dims.shank_length_m + r), r)
        foot = add_body(shank, f"foot_{side}", (0.0, 0.0, -dims.shank_length_m))
        add_hinges(foot, leg[4:6])
        _add_foot_geoms(foot, side, dims, scale)

    kp, kv = actuation.pd_gains(mass, anthropometry.height_m)
    ceilings = actuation.torque_ceilings_nm(mass, anthropometry.height_m)
    for joint, joint_kp, joint_kv, ceiling in zip(JOINT_NAMES, kp, kv, ceilings, strict=True):
        act = spec.add_actuator(name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=float(joint_kp), kv=float(joint_kv))
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = list(joint_range_rad(joint))
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-float(ceiling), float(ceiling)]

    for body in BODY_NAMES:
        # one contact sensor per body against the static terrain geoms: 'found' needs only the position stage
        sensor = spec.add_sensor(name=CONTACT_SENSOR.format(body), type=mujoco.mjtSensor.mjSENS_CONTACT)
        sensor.objtype, sensor.objname = mujoco.mjtObj.mjOBJ_BODY, body
        sensor.reftype, sensor.refname = mujoco.mjtObj.mjOBJ_BODY, "world"
        sensor.intprm = [1, 0, 1]  # data="found", reduce="none", num=1

    key = spec.add_key(name=STAND_KEYFRAME)
    key.qpos = [0.0, 0.0, hip_z, 1.0, 0.0, 0.0, 0.0] + [0.0] * len(JOINT_NAMES)
    key.ctrl = [0.0] * len(JOINT_NAMES)
    return spec


def _body_geom(geom: mujoco.MjsGeom) -> None:
    geom.contype, geom.conaffinity = BODY_CONTYPE, BODY_CONAFFINITY
    geom.group = BODY_GEOM_GROUP
    geom.friction = list(GROUND_FRICTION)
    geom.solref, geom.solimp = list(CONTACT_SOLREF), list(CONTACT_SOLIMP)
    geom.rgba = list(SKIN_RGBA)


def _add_foot_geoms(foot: mujoco.MjsBody, side: str, dims: BodyDimensions, scale: float) -> None:
    heel_x = -dims.ankle_from_heel_m
    toe_x = heel_x + dims.foot_length_m
    sole_z = -dims.ankle_height_m
    r_heel, r_fore = RADIUS_M["heel"] * scale, RADIUS_M["forefoot"] * scale
    heel_half, fore_half = 0.25 * dims.foot_width_m, 0.4 * dims.foot_width_m
    heel = foot.add_geom(name=f"heel_{side}", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[r_heel, 0.0, 0.0])
    heel.fromto = [heel_x + r_heel, heel_half, sole_z + r_heel, heel_x + r_heel, -heel_half, sole_z + r_heel]
    mtp_x = heel_x + MTP_PER_FOOT_LENGTH * dims.foot_length_m
    fore = foot.add_geom(name=f"forefoot_{side}", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[r_fore, 0.0, 0.0])
    fore.fromto = [mtp_x, fore_half, sole_z + r_fore, mtp_x, -fore_half, sole_z + r_fore]
    for geom in (heel, fore):
        _body_geom(geom)
    # the visible foot: a box from heel to toe tip, which does not collide
    shape = foot.add_geom(name=f"foot_shape_{side}", type=mujoco.mjtGeom.mjGEOM_BOX)
    shape.size = [dims.foot_length_m / 2, dims.foot_width_m / 2, dims.ankle_height_m * 0.35]
    shape.pos = [(heel_x + toe_x) / 2, 0.0, sole_z + dims.ankle_height_m * 0.35]
    shape.contype = shape.conaffinity = 0
    shape.group = VISUAL_GEOM_GROUP
    shape.rgba = list(SKIN_RGBA)
    foot.add_site(name=f"foot_end_{side}", pos=[(heel_x + toe_x) / 2, 0.0, sole_z])


def build_twin(anthropometry: Anthropometry | None = None, terrain: str | Terrain = "flat") -> Twin:
    """Compile the twin for a patient on a course.

    Raises:
        AnthropometryError: implausible measurements.
        UnknownNameError: an unknown terrain name.
    """
    anthropometry = anthropometry or Anthropometry()
    course = terrain if isinstance(terrain, Terrain) else get_terrain(terrain)
    model = build_spec(anthropometry, course).compile()
    return Twin(
        model=model,
        dimensions=body_dimensions(anthropometry),
        terrain=course,
        torque_ceiling_nm=actuation.torque_ceilings_nm(anthropometry.mass_kg, anthropometry.height_m),
        joint_range_rad=np.array([joint_range_rad(j) for j in JOINT_NAMES]),
    )

