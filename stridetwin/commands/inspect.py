"""``stridetwin inspect FILE [--json]``: per-sensor sample count, rate, loss, gaps, jitter and clock drift of a clip."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

#: Gaps listed per sensor in the text output (JSON lists them all).
MAX_GAPS_SHOWN = 8


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="print per-sensor counts, rate, loss, gaps, jitter and clock drift of a clip",
        description="Inspect a clip (.stclip). An unfinished clip (crash, still recording) is read up to its last "
        "complete record and marked as such.",
    )
    parser.add_argument("file", metavar="FILE", help="clip file (.stclip)")
    parser.add_argument("--json", action="store_true", help="print the stridetwin.inspect/1 JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensor_drivers.recording.stats import inspect_clip
    from stridetwin.commands._clip import read_clip_or_exit

    clip = read_clip_or_exit(args.file)
    report = inspect_clip(clip)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(format_text(report.to_json()))
    return 0


def _num(value: float | None, fmt: str, missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def format_text(doc: dict[str, Any]) -> str:
    """The text table of an inspection document."""
    lines = []
    state = "finished" if doc["finished"] else f"UNFINISHED ({doc['stopped_reading']}; run `stridetwin recover`)"
    if doc["recovered"]:
        state += ", recovered after a crash"
    lines.append(f"clip {doc['path']}: schema {doc['schema_version']}, {state}")
    meta = doc["metadata"]
    patient = meta.get("patient") or {}
    protocol = meta.get("protocol") or {}
    walkway = protocol.get("walkway_length_m")
    lines.append(
        f"patient {patient.get('pseudonym') or '-'}, walkway {_num(walkway, 'g')} m, "
        f"{len(doc['sensors'])} sensor(s) over {doc['duration_s']:.2f} s, {doc['n_link_events']} link event(s)"
        + (f", sections: {', '.join(doc['sections'])}" if doc["sections"] else "")
    )
    header = ("sensor", "site", "samples", "rate Hz", "nominal", "loss %", "gaps", "jitter ms", "p99 ms", "drift ppm")
    rows = []
    for s in doc["sensors"]:
        rows.append(
            (
                s["sensor_id"],
                s["site"],
                str(s["n_samples"]),
                _num(s["effective_rate_hz"], ".2f"),
                _num(s["nominal_rate_hz"], "g") + ("?" if s["nominal_rate_source"] == "estimated" else ""),
                _num(s["loss_pct"], ".2f") + ("*" if s["loss_method"] == "nominal rate" else ""),
                str(len(s["gaps"])),
                _num(s["jitter_std_ms"], ".2f"),
                _num(s["jitter_p99_ms"], ".2f"),
                _num(s["drift_ppm"], "+.1f"),
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for cells in (header, *rows):
        padded = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        lines.append("  ".join(padded).rstrip())
    notes = []
    for s in doc["sensors"]:
        for g in s["gaps"][:MAX_GAPS_SHOWN]:
            edge = {"start": " (started late)", "end": " (silent until the end)"}.get(g["edge"], "")
            notes.append(
                f"  gap {s['sensor_id']} ({s['site']}): {g['start_s']:.3f}-{g['end_s']:.3f} s, "
                f"{g['duration_s'] * 1e3:.0f} ms, ~{g['n_missing']} sample(s){edge}"
            )
        if len(s["gaps"]) > MAX_GAPS_SHOWN:
            notes.append(f"  … {len(s['gaps']) - MAX_GAPS_SHOWN} more gap(s) for {s['sensor_id']} (see --json)")
        if s["n_disconnects"] or s["n_link_gaps"]:
            notes.append(f"  {s['sensor_id']}: {s['n_disconnects']} disconnect(s), {s['n_link_gaps']} marked gap(s)")
    drift_notes = {s["drift_note"] for s in doc["sensors"] if s["drift_ppm"] is None and s["drift_note"]}
    if len(drift_notes) == 1 and all(s["drift_ppm"] is None for s in doc["sensors"]):
        notes.append(f"  drift n/a for every sensor: {drift_notes.pop()}")
    else:
        notes += [
            f"  drift {s['sensor_id']}: n/a, {s['drift_note']}"
            for s in doc["sensors"]
            if s["drift_ppm"] is None and s["drift_note"]
        ]
    if notes:
        lines.append("")
        lines.extend(notes)
    lines.append("")
    lines.append(
        "loss from sequence numbers (* from the nominal rate); ? nominal rate estimated; gaps > max(4 periods, 50 ms); "
        "times in s since the first sample"
    )
    return "\n".join(lines)
