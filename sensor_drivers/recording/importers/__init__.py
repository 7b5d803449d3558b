"""Importers for recordings made with other systems, and for the project's own CSV; each writes a clip.

- ``xsens``: Xsens MT Manager text export, one file per sensor (:mod:`.xsens_mt`)
- ``dot``: Movella DOT CSV export, one file per sensor (:mod:`.movella_dot`)
- ``csv``: StrideTwin samples CSV, any number of sensors per file (:mod:`.stridetwin_csv`)

Exports from other systems carry no host receive clock: ``host_time_s`` is set from the device clock, aligned
across sensors whose clocks are synchronised, and each sensor record says so (``extra.host_time_source``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sensor_drivers.recording.clipfile import deep_merge
from sensor_drivers.recording.importers.common import (
    ImportedSensor,
    ImportReport,
    ParsedSensor,
    align_host_times,
    parse_site_mapping,
    resolve_sites,
    write_clip,
)
from sensor_drivers.recording.importers.movella_dot import parse_movella_dot
from sensor_drivers.recording.importers.stridetwin_csv import parse_stridetwin_csv
from sensor_drivers.recording.importers.xsens_mt import parse_xsens_mt

#: Import format names (``stridetwin import FORMAT``).
FORMATS: tuple[str, ...] = ("xsens", "dot", "csv")


def import_files(
    source_format: str,
    files: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    *,
    sites: Mapping[str, Any] | Iterable[str] = (),
    mag_au_ut: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Parse ``files`` of one format and write them as one clip.

    ``sites`` maps a sensor key (file name or stem, device id, DOT tag or MAC, CSV sensor id; any case) to a site,
    as a dict or as ``KEY=SITE`` strings. Raises RecordingFormatError for a file in the wrong format and ValueError
    for a missing or ambiguous site mapping; nothing is written then.
    """
    if source_format not in FORMATS:
        raise ValueError(f"unknown import format {source_format!r}; known: {', '.join(FORMATS)}")
    if not files:
        raise ValueError("no input files given")
    items = [f"{k}={v}" for k, v in sites.items()] if isinstance(sites, Mapping) else list(sites)
    mapping = parse_site_mapping(items)
    paths = [Path(f) for f in files]
    notes: list[str] = []
    meta: dict[str, Any] = dict(metadata or {})
    link_events: list[dict[str, Any]] = []
    parsed: list[ParsedSensor] = []
    if source_format == "xsens":
        parsed = [parse_xsens_mt(p, mag_au_ut=mag_au_ut) for p in paths]
        notes += align_host_times(parsed)
    elif source_format == "dot":
        parsed = [parse_movella_dot(p, mag_au_ut=mag_au_ut) for p in paths]
        notes += align_host_times(parsed)
    else:
        for p in paths:
            sensors, file_meta, events = parse_stridetwin_csv(p)
            parsed += sensors
            link_events += events
            file_meta = {k: v for k, v in file_meta.items() if k not in ("schema_version", "created_utc", "import")}
            meta = deep_merge(file_meta, meta)
        ids = [s.sensor_id for s in parsed]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"sensor id(s) {repeated} appear in more than one of the CSV files")
    resolved = resolve_sites(parsed, mapping)
    return write_clip(
        parsed,
        resolved,
        out_path,
        source_format=source_format,
        notes=notes,
        metadata=meta,
        overwrite=overwrite,
        link_events=link_events,
    )


__all__ = [
    "FORMATS",
    "ImportReport",
    "ImportedSensor",
    "ParsedSensor",
    "import_files",
    "parse_movella_dot",
    "parse_site_mapping",
    "parse_stridetwin_csv",
    "parse_xsens_mt",
]
