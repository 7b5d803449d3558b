"""Vectorised locomotion environments on ``mujoco.batch``: constants, the shared base, one module per task
(walk, slope, stairs) and a registry (:func:`cloud_trainer.envs.registry.make_env`)."""
