"""The adaptation's task: the patient's goals, a narrower joint-angle kernel than the tasks' (docs/pipeline.md)."""

import dataclasses

from cloud_trainer.pipeline.adapt import adaptation_config, patient_walk_config
from cloud_trainer.pipeline.predict import flat_ground_config
from cloud_trainer.pipeline.reference import ObservedGait

GAIT = ObservedGait(speed_m_s=0.5, stride_length_m=0.94, source="clip metrics")


def test_adaptation_narrows_the_joint_angle_kernel_and_changes_nothing_else():
    walk, adapt = patient_walk_config(GAIT), adaptation_config(GAIT)
    assert adapt.joint_angle_scale_rad < walk.joint_angle_scale_rad
    assert dataclasses.replace(adapt, joint_angle_scale_rad=walk.joint_angle_scale_rad) == walk
    assert adapt.speed_range_m_s == (0.5, 0.5)
    assert adapt.stride_length_range_m == (0.94, 0.94)


def test_the_curriculums_flat_return_is_measured_with_the_tasks_kernels():
    # the slope's returns (walk-task kernels) are compared with it; the adaptation's kernel would lower it
    flat = flat_ground_config(GAIT, episode_steps=300)
    assert flat == patient_walk_config(GAIT, episode_steps=300)
    assert flat.joint_angle_scale_rad != adaptation_config(GAIT).joint_angle_scale_rad
