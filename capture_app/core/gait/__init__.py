"""Gait analysis of the walk test: shank events (live and refined), strides, steady state, spatiotemporal metrics with
reasons for the missing ones, and clinical context. See docs/gait-metrics.md."""

from capture_app.core.gait.analysis import GAIT_JSON_SCHEMA, GaitAnalysis, LiveGait
from capture_app.core.gait.axis import EXPECTED_SWING_AXIS_SENSOR, FixedAxis, SagittalAxis
from capture_app.core.gait.events import GaitEvent, LiveShankEvents, ShankEventDetector, Swing, SwingDetector
from capture_app.core.gait.metrics import METRICS, SpatiotemporalMetrics
from capture_app.core.gait.norms import clinical_context, healthy_bands, speed_category
from capture_app.core.gait.strides import Stride, StrideSegmentation

__all__ = [
    "EXPECTED_SWING_AXIS_SENSOR",
    "GAIT_JSON_SCHEMA",
    "METRICS",
    "FixedAxis",
    "GaitAnalysis",
    "GaitEvent",
    "LiveGait",
    "LiveShankEvents",
    "SagittalAxis",
    "ShankEventDetector",
    "SpatiotemporalMetrics",
    "Stride",
    "StrideSegmentation",
    "Swing",
    "SwingDetector",
    "clinical_context",
    "healthy_bands",
    "speed_category",
]
