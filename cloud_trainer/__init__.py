"""The trainer service: reference motions, the MuJoCo digital twin, the Healthy Motion Atlas, patient adaptation and
task prediction. Built from issue 4 on."""
