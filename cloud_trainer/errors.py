"""Errors raised by the trainer. Each message names what was wrong and what is accepted."""


class TrainerError(Exception):
    """Base class for errors of the trainer."""


class AnthropometryError(TrainerError, ValueError):
    """Patient measurements (height, mass, sex) outside what the body model can be scaled to."""


class UnknownNameError(TrainerError, KeyError):
    """A name (terrain, environment, joint, …) that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ReferenceMotionError(TrainerError, ValueError):
    """A reference motion whose arrays, rates or flags are inconsistent or not finite."""
