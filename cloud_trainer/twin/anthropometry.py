"""Patient anthropometrics and the segment parameters the body model is scaled with.

Segment lengths, masses, centre-of-mass positions and radii of gyration come from de Leva (1996), "Adjustments to
Zatsiorsky-Seluyanov's segment inertia parameters", J. Biomech. 29(9):1223-1230, Table 4 (reproduced in
``docs/twin-model.md``). Lengths are used as fractions of de Leva's reference stature (1741 mm men, 1735 mm women) and
scaled to the patient's height; masses are fractions of body mass. Widths that de Leva does not give come from
Winter (2009), "Biomechanics and Motor Control of Human Movement", 4th ed., Fig. 4.1 (after Drillis & Contini 1966),
and the hip-centre spacing from the Delp et al. (1990) lower-limb model (OpenSim gait2392).

The model has seven rigid segments: the pelvis is de Leva's lower trunk (OMPH-MIDH); the torso lumps the middle and
upper trunk, the head and both arms hanging at the sides (parallel-axis theorem); thighs, shanks and feet are de Leva's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud_trainer.errors import AnthropometryError

#: Accepted input ranges: adults and adolescents a lower-limb model of this kind describes.
HEIGHT_RANGE_M = (1.2, 2.2)
MASS_RANGE_KG = (30.0, 200.0)
#: Body-mass index range that goes with them (kg/m²): outside it the rigid-segment mass fractions stop describing a
#: body (severe cachexia or obesity); the product says so rather than simulating nonsense.
BMI_RANGE_KG_M2 = (12.0, 60.0)
SEXES = ("female", "male")


@dataclass(frozen=True)
class DeLevaSegment:
    """One row of de Leva (1996) Table 4: length (mm, for the reference stature), mass (% of body mass), CoM
    (% of length from the proximal endpoint) and radii of gyration about the sagittal, transverse and longitudinal
    axes (% of length)."""

    length_mm: float
    mass_pct: float
    com_pct: float
    r_sagittal_pct: float
    r_transverse_pct: float
    r_longitudinal_pct: float


#: de Leva (1996) Table 4. Proximal endpoints: head VERT (vertex), trunk parts their superior endpoint (CERV, XYPH,
#: OMPH), limbs the proximal joint centre, foot the heel.
DE_LEVA_1996: dict[str, dict[str, DeLevaSegment]] = {
    "female": {
        "head": DeLevaSegment(243.7, 6.68, 58.94, 33.0, 35.9, 31.8),
        "upper_trunk": DeLevaSegment(228.0, 15.45, 20.77, 74.6, 50.2, 71.8),
        "middle_trunk": DeLevaSegment(205.3, 14.65, 45.12, 43.3, 35.4, 41.5),
        "lower_trunk": DeLevaSegment(181.5, 12.47, 49.20, 43.3, 40.2, 44.4),
        "upper_arm": DeLevaSegment(275.1, 2.55, 57.54, 27.8, 26.0, 14.8),
        "forearm": DeLevaSegment(264.3, 1.38, 45.59, 26.1, 25.7, 9.4),
        "hand": DeLevaSegment(78.0, 0.56, 74.74, 53.1, 45.4, 33.5),
        "thigh": DeLevaSegment(369.5, 14.78, 36.12, 36.9, 36.4, 16.2),
        "shank": DeLevaSegment(432.3, 4.81, 44.16, 27.1, 26.7, 9.3),
        "foot": DeLevaSegment(228.3, 1.29, 40.14, 29.9, 27.9, 13.9),
    },
    "male": {
        "head": DeLevaSegment(242.9, 6.94, 59.76, 36.2, 37.6, 31.2),
        "upper_trunk": DeLevaSegment(242.1, 15.96, 29.99, 71.6, 45.4, 65.9),
        "middle_trunk": DeLevaSegment(215.5, 16.33, 45.02, 48.2, 38.3, 46.8),
        "lower_trunk": DeLevaSegment(145.7, 11.17, 61.15, 61.5, 55.1, 58.7),
        "upper_arm": DeLevaSegment(281.7, 2.71, 57.72, 28.5, 26.9, 15.8),
        "forearm": DeLevaSegment(268.9, 1.62, 45.74, 27.6, 26.5, 12.1),
        "hand": DeLevaSegment(86.2, 0.61, 79.00, 62.8, 51.3, 40.1),
        "thigh": DeLevaSegment(422.2, 14.16, 40.95, 32.9, 32.9, 14.9),
        "shank": DeLevaSegment(434.0, 4.33, 44.59, 25.5, 24.9, 10.3),
        "foot": DeLevaSegment(258.1, 1.37, 44.15, 25.7, 24.5, 12.4),
    },
}
#: de Leva's reference statures (mm), to which the lengths above belong.
DE_LEVA_STATURE_MM = {"female": 1735.0, "male": 1741.0}

#: Winter (2009) Fig. 4.1, as fractions of height: ankle height (floor to lateral malleolus), foot width and
#: shoulder (biacromial) width.
ANKLE_HEIGHT_PER_HEIGHT = 0.039
FOOT_WIDTH_PER_HEIGHT = 0.055
SHOULDER_WIDTH_PER_HEIGHT = 0.259
#: Distance between the hip joint centres per height: 0.167 m in the Delp et al. (1990) model of a 1.80 m man.
HIP_SPACING_PER_HEIGHT = 0.167 / 1.80
#: Where the ankle joint sits along the foot, as a fraction of heel-to-toe length from the heel (the talocrural axis
#: lies about a fifth of the foot length in front of the heel; 0.049 m of 0.26 m in the Delp et al. model).
ANKLE_FROM_HEEL_PER_FOOT_LENGTH = 0.19


@dataclass(frozen=True)
class Anthropometry:
    """A patient's body measurements, validated on construction.

    Raises:
        AnthropometryError: a value outside the accepted range (named in the message).
    """

    height_m: float = 1.75
    mass_kg: float = 70.0
    sex: str = "male"

    def __post_init__(self) -> None:
        _check_range("height_m", self.height_m, HEIGHT_RANGE_M, "m")
        _check_range("mass_kg", self.mass_kg, MASS_RANGE_KG, "kg")
        if self.sex not in SEXES:
            raise AnthropometryError(
                f"sex must be one of {SEXES} (the de Leva 1996 tables exist for these), got {self.sex!r}"
            )
        bmi = self.mass_kg / self.height_m**2
        if not BMI_RANGE_KG_M2[0] <= bmi <= BMI_RANGE_KG_M2[1]:
            raise AnthropometryError(
                f"height {self.height_m} m with mass {self.mass_kg} kg gives a body-mass index of {bmi:.1f} kg/m², "
                f"outside the accepted {BMI_RANGE_KG_M2[0]}-{BMI_RANGE_KG_M2[1]} kg/m²"
            )


def _check_range(name: str, value: float, bounds: tuple[float, float], unit: str) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnthropometryError(
            f"{name} must be a number in [{bounds[0]}, {bounds[1]}] {unit}, got {value!r}"
        ) from None
    if not np.isfinite(number) or not bounds[0] <= number <= bounds[1]:
        raise AnthropometryError(f"{name} must be in [{bounds[0]}, {bounds[1]}] {unit}, got {value!r}")


@dataclass(frozen=True)
class SegmentInertia:
    """Mass properties of one model body in its own frame (x forward, y left, z up at the neutral pose)."""

    mass_kg: float
    com_m: tuple[float, float, float]
    #: Principal moments about axes through the CoM parallel to the body frame (the segments are symmetric enough
    #: that these are principal axes).
    inertia_kg_m2: tuple[float, float, float]


@dataclass(frozen=True)
class BodyDimensions:
    """Everything the model builder needs: joint-centre geometry and the seven bodies' mass properties.

    Vertical lengths are scaled so that ankle height + shank + thigh + trunk + head equals the patient's height.
    """

    anthropometry: Anthropometry
    ankle_height_m: float
    shank_length_m: float
    thigh_length_m: float
    lower_trunk_length_m: float  # pelvis: hip centres (MIDH) to the lumbar joint (OMPH)
    upper_body_length_m: float  # torso: lumbar joint (OMPH) to cervicale (CERV)
    head_length_m: float  # cervicale to vertex
    foot_length_m: float
    foot_width_m: float
    ankle_from_heel_m: float
    hip_spacing_m: float
    shoulder_width_m: float
    segments: dict[str, SegmentInertia]

    @property
    def standing_hip_height_m(self) -> float:
        """Height of the hip joint centres above flat ground at the neutral pose."""
        return self.ankle_height_m + self.shank_length_m + self.thigh_length_m


def body_dimensions(anthropometry: Anthropometry) -> BodyDimensions:
    """Scale de Leva's (1996) segment table to the patient: lengths, masses, CoMs and inertias of the seven bodies."""
    height_m, mass_kg, sex = anthropometry.height_m, anthropometry.mass_kg, anthropometry.sex
    table = DE_LEVA_1996[sex]
    stature_mm = DE_LEVA_STATURE_MM[sex]
    ankle_height_m = ANKLE_HEIGHT_PER_HEIGHT * height_m
    chain = ("shank", "thigh", "lower_trunk", "middle_trunk", "upper_trunk", "head")
    chain_fraction = sum(table[s].length_mm for s in chain) / stature_mm
    # de Leva's chain from malleolus to vertex plus Winter's ankle height misses the stature by about 1-2 %
    # (joint centres are not surface landmarks): spread that evenly over the vertical segments.
    vertical_scale = (height_m - ankle_height_m) / (chain_fraction * height_m)

    def length_m(name: str, scale: float = 1.0) -> float:
        return table[name].length_mm / stature_mm * height_m * scale

    lengths = {name: length_m(name, vertical_scale) for name in chain}
    arm_lengths = {name: length_m(name) for name in ("upper_arm", "forearm", "hand")}
    foot_length_m = length_m("foot")
    total_pct = sum(row.mass_pct for name, row in table.items()) + sum(
        table[n].mass_pct for n in ("upper_arm", "forearm", "hand", "thigh", "shank", "foot")
    )

    def mass(name: str) -> float:
        # normalised so that the model's mass is exactly the patient's (the table sums to 100 ± 0.01 %)
        return table[name].mass_pct / total_pct * mass_kg

    def principal(name: str, seg_length_m: float) -> np.ndarray:
        row = table[name]
        # radii about the sagittal (x), transverse (y) and longitudinal (z) axes of an upright segment
        radii = np.array([row.r_sagittal_pct, row.r_transverse_pct, row.r_longitudinal_pct]) / 100.0 * seg_length_m
        return mass(name) * radii**2

    segments: dict[str, SegmentInertia] = {}
    # pelvis: lower trunk, frame origin at the hip-centre midpoint (MIDH), proximal endpoint OMPH above it
    low = lengths["lower_trunk"]
    segments["pelvis"] = SegmentInertia(
        mass("lower_trunk"), (0.0, 0.0, low * (1.0 - table["lower_trunk"].com_pct / 100.0)),
        tuple(principal("lower_trunk", low)),
    )
    # torso: frame origin at OMPH; middle trunk, upper trunk, head on the axis, arms hanging at the shoulders
    mid, up, head = lengths["middle_trunk"], lengths["upper_trunk"], lengths["head"]
    shoulder_width_m = SHOULDER_WIDTH_PER_HEIGHT * height_m
    parts: list[tuple[float, np.ndarray, np.ndarray]] = [
        (mass("middle_trunk"), np.array([0.0, 0.0, mid * (1 - table["middle_trunk"].com_pct / 100)]),
         principal("middle_trunk", mid)),
        (mass("upper_trunk"), np.array([0.0, 0.0, mid + up * (1 - table["upper_trunk"].com_pct / 100)]),
         principal("upper_trunk", up)),
        (mass("head"), np.array([0.0, 0.0, mid + up + head * (1 - table["head"].com_pct / 100)]),
         principal("head", head)),
    ]
    # shoulder joint centres approximated at cervicale height, half the biacromial width to each side
    for side in (1.0, -1.0):
        z = mid + up
        for name in ("upper_arm", "forearm", "hand"):
            seg = arm_lengths[name]
            com_z = z - seg * table[name].com_pct / 100
            parts.append((mass(name), np.array([0.0, side * shoulder_width_m / 2, com_z]), principal(name, seg)))
            z -= seg
    segments["torso"] = _lump(parts)
    for side in ("r", "l"):
        thigh, shank = lengths["thigh"], lengths["shank"]
        segments[f"thigh_{side}"] = SegmentInertia(
            mass("thigh"), (0.0, 0.0, -thigh * table["thigh"].com_pct / 100), tuple(principal("thigh", thigh))
        )
        segments[f"shank_{side}"] = SegmentInertia(
            mass("shank"), (0.0, 0.0, -shank * table["shank"].com_pct / 100), tuple(principal("shank", shank))
        )
        # foot lies along x: its longitudinal radius is about x, transverse about y, sagittal about z
        r_sag, r_trans, r_long = principal("foot", foot_length_m)
        heel_x = -ANKLE_FROM_HEEL_PER_FOOT_LENGTH * foot_length_m
        segments[f"foot_{side}"] = SegmentInertia(
            mass("foot"),
            (heel_x + foot_length_m * table["foot"].com_pct / 100, 0.0, -ankle_height_m / 2),
            (float(r_long), float(r_trans), float(r_sag)),
        )
    return BodyDimensions(
        anthropometry=anthropometry,
        ankle_height_m=ankle_height_m,
        shank_length_m=lengths["shank"],
        thigh_length_m=lengths["thigh"],
        lower_trunk_length_m=low,
        upper_body_length_m=mid + up,
        head_length_m=head,
        foot_length_m=foot_length_m,
        foot_width_m=FOOT_WIDTH_PER_HEIGHT * height_m,
        ankle_from_heel_m=ANKLE_FROM_HEEL_PER_FOOT_LENGTH * foot_length_m,
        hip_spacing_m=HIP_SPACING_PER_HEIGHT * height_m,
        shoulder_width_m=shoulder_width_m,
        segments=segments,
    )


def _lump(parts: list[tuple[float, np.ndarray, np.ndarray]]) -> SegmentInertia:
    """One rigid body from several: total mass, CoM, and inertia about the CoM by the parallel-axis theorem."""
    masses = np.array([m for m, _, _ in parts])
    coms = np.array([c for _, c, _ in parts])
    total = float(masses.sum())
    com = (masses[:, None] * coms).sum(axis=0) / total
    inertia = np.zeros((3, 3))
    for m, c, principal in parts:
        d = c - com
        inertia += np.diag(principal) + m * (d @ d * np.eye(3) - np.outer(d, d))
    # the arms are placed symmetrically, so the off-diagonal products cancel
    return SegmentInertia(total, tuple(com), tuple(np.diag(inertia)))
