"""Clinical context: Perry's speed categories and healthy walk-ratio bands at matched speed."""

from __future__ import annotations

import math

import pytest

from capture_app.core.gait.norms import clinical_context, healthy_bands, speed_category


@pytest.mark.parametrize(("speed", "category"), [(0.2, "household"), (0.399, "household"), (0.4, "limited community"),
                                                 (0.8, "limited community"), (0.81, "community"), (1.3, "community")])
def test_perry_categories(speed: float, category: str) -> None:
    assert speed_category(speed) == category


def test_bands_follow_the_walk_ratio() -> None:
    bands = healthy_bands(1.3)  # preferred-speed walk ratio 0.41 ± 0.04 m·s (Terrier & Schutz 2003)
    assert not bands["cadence_steps_min"].extrapolated
    assert bands["step_length_m"].low == pytest.approx(math.sqrt((0.41 - 1.96 * 0.04) * 1.3))
    assert bands["cadence_steps_min"].high == pytest.approx(60 * math.sqrt(1.3 / (0.41 - 1.96 * 0.04)))
    assert bands["stride_length_m"].high == pytest.approx(2 * bands["step_length_m"].high)
    slow = healthy_bands(0.5)
    assert slow["cadence_steps_min"].extrapolated
    assert slow["step_length_m"].contains(math.sqrt(0.44 * 0.5))
    # cadence × step length of the band centre gives back the speed
    centre = 0.44
    assert 60 * math.sqrt(0.5 / centre) * math.sqrt(centre * 0.5) / 60 == pytest.approx(0.5)
    with pytest.raises(ValueError, match="speed"):
        healthy_bands(0.0)


def test_context_compares_the_patient() -> None:
    context = clinical_context({"gait_speed_m_s": 0.5, "cadence_steps_min": 90.0, "step_length_l_m": 0.2,
                                "step_length_r_m": 0.45})  # fmt: skip
    assert context["speed_category"] == "limited community"
    assert context["comparison"] == {"cadence_steps_min": "above", "step_length_l_m": "below",
                                     "step_length_r_m": "within"}  # fmt: skip
    assert clinical_context({}) == {}
