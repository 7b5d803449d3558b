"""The bedside app: a Qt-free core (fusion, calibration, placement and quality checks, live gait, recording, outbox)
and a PySide6 + pyqtgraph UI on top of it. Built from issue 3 on."""
