"""Reference motions: the representation environments imitate (:mod:`cloud_trainer.motion.reference`), and readers and
retargeting that turn clips and motion files into it."""
