"""The patient's physics digital twin: a MuJoCo lower-limb model scaled to the patient, its PD actuation, terrains
and forward kinematics."""
