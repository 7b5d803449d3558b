"""Fixtures shared with the link's tests: a real trainer on loopback and clips."""

from tests.capture_app.link.conftest import make_clip, make_trainer, trainer  # noqa: F401 (fixtures)
