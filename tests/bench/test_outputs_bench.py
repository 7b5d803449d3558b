"""The "outputs" benchmark suite is registered and runs (its figures are for the bench and docs/patient-outputs.md)."""

from __future__ import annotations

import pytest

from bench import outputs
from stridetwin.commands.bench import SUITES


@pytest.mark.slow
def test_outputs_suite_runs_quick() -> None:
    assert SUITES["outputs"] == "bench.outputs"
    result = outputs.run(quick=True)
    assert result["onnx_max_abs_diff"] < 1e-4
    assert result["video_egl"]["render_s_per_video_s"] > 0
    assert result["atlas_flat"]["falls"] == 0
    assert result["report_build_s"] > 0
