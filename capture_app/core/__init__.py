"""The Qt-free core of the bedside app: everything from synchronised IMU samples to verdicts, angles and metrics."""
