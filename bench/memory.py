"""Memory figures of the running process, for benchmarks.

Peak RSS comes from ``VmHWM`` in ``/proc/self/status`` rather than ``getrusage``: Linux carries ``ru_maxrss`` over
``exec``, so a benchmark child started from a large parent would report the parent's size.
"""

from __future__ import annotations

import resource


def _status_mb(key: str) -> float | None:
    """A figure from /proc/self/status (``VmRSS``: now, ``VmHWM``: peak), MB; ``None`` where there is no /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def rss_mb() -> float:
    """Resident set size now, MB."""
    now = _status_mb("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MB."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
