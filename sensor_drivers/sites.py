"""The five body sites a StrideTwin kit instruments, and their segment/side."""

from __future__ import annotations

from enum import StrEnum


class Site(StrEnum):
    """Where a sensor is meant to sit. The value is the name used in files, source strings and the clip format."""

    PELVIS = "pelvis"
    THIGH_L = "thigh_l"
    THIGH_R = "thigh_r"
    SHANK_L = "shank_l"
    SHANK_R = "shank_r"

    @property
    def segment(self) -> str:
        """``pelvis``, ``thigh`` or ``shank``."""
        return self.value.split("_")[0]

    @property
    def side(self) -> str | None:
        """``left``, ``right`` or ``None`` for the pelvis."""
        if self is Site.PELVIS:
            return None
        return "left" if self.value.endswith("_l") else "right"

    @classmethod
    def parse(cls, text: str) -> Site:
        """Parse a site name, with a clear error listing the accepted names."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            accepted = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown sensor site {text!r}; accepted: {accepted}") from None


#: The standard five-sensor kit, in the order the app lists them.
KIT_SITES: tuple[Site, ...] = (Site.PELVIS, Site.THIGH_L, Site.THIGH_R, Site.SHANK_L, Site.SHANK_R)
