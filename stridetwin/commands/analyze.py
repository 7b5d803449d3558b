"""``stridetwin analyze FILE [--json] [--angles-csv OUT]``: events, strides, metrics (with the reasons for missing
ones), joint-angle ranges and verdicts of a recorded walk test."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

#: Strides listed in the text output (the JSON lists them all).
MAX_STRIDES_SHOWN = 60


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyse a recorded walk: events, strides, metrics, joint-angle ranges, verdicts",
        description="Analyse a clip (.stclip) offline: gait events and strides, spatiotemporal metrics with the reason "
        "for every one that cannot be given, joint angles (ranges over the steady walk) and verdicts on placement "
        "and signal quality. An unfinished clip is analysed up to where its data ends.",
    )
    parser.add_argument("file", metavar="FILE", help="clip (.stclip)")
    parser.add_argument("--json", action="store_true", help="print the stridetwin.analyze/1 JSON document")
    parser.add_argument("--angles-csv", metavar="OUT", default=None,
                        help="write the joint angles over time: time_s (clip clock) and one column per angle, degrees")
    parser.add_argument("--relabel", action="store_true",
                        help="analyse the sensors on the sites the placement check identified (default: only propose)")
    parser.add_argument("--force", action="store_true", help="overwrite --angles-csv if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from capture_app.core.session.analysis import WalkAnalysis
    from stridetwin.cli import CliError
    from stridetwin.commands._clip import read_clip_or_exit

    clip = read_clip_or_exit(args.file)
    analysis = WalkAnalysis(apply_relabelling=args.relabel).analyze(clip)
    if args.angles_csv:
        try:
            n_rows = analysis.write_angles_csv(args.angles_csv, overwrite=args.force)
        except FileExistsError:
            raise CliError(f"{args.angles_csv} already exists (pass --force to overwrite)") from None
        except OSError as exc:
            raise CliError(f"{args.angles_csv}: {exc.strerror or exc}") from None
        note = f"wrote {args.angles_csv}: {n_rows} rows, {len(analysis.angles_deg_)} angle(s)"
        print(note, file=sys.stderr if args.json else sys.stdout)
    doc = analysis.to_json()
    if args.json:
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(format_text(doc))
    return 0


def _num(value: float | None, fmt: str, missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], left: int = 1) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = []
    for cells in (header, *rows):
        padded = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        lines.append("  " + "  ".join(padded).rstrip())
    return lines


def format_text(doc: dict[str, Any]) -> str:
    """The text report of an analysis document."""
    lines: list[str] = []
    clip = doc.get("clip") or {}
    patient = clip.get("patient") or {}
    protocol = clip.get("protocol") or {}
    state = "finished" if clip.get("finished") else "UNFINISHED"
    if clip.get("recovered"):
        state += ", recovered after a crash"
    lines.append(f"clip {clip.get('path')}: {state}, {_num(clip.get('duration_s'), '.1f')} s, "
                 f"sensors on {', '.join(clip.get('sites') or {}) or 'no known site'}")  # fmt: skip
    lines.append(f"patient {patient.get('pseudonym') or '-'}, height {_num(patient.get('height_m'), 'g')} m, "
                 f"affected side {patient.get('affected_side') or '-'}, walkway "
                 f"{_num(protocol.get('walkway_length_m'), 'g')} m")  # fmt: skip
    intervals = doc["intervals"]
    still, walk = intervals.get("still_s"), intervals.get("walking_s")
    lines.append(
        "still " + (f"{still[0]:.2f}-{still[1]:.2f} s" if still else "not found")
        + f" ({intervals['source'].replace('_', ' ')}), walking "
        + (f"{walk[0]:.2f}-{walk[1]:.2f} s" if walk else "not found")
        + f"; overall: {doc['level'].upper()}"
    )

    verdicts = [v for v in doc["verdicts"] if v["level"] != "ok"]
    lines += ["", f"verdicts ({len(verdicts)})" if verdicts else "verdicts: none, everything ok"]
    for v in sorted(verdicts, key=lambda v: ("fail", "warning", "ok").index(v["level"])):
        lines.append(f"  {v['level'].upper():7s} {v['subject']}: {v['message']}")
        if v.get("action"):
            lines.append(f"          → {v['action']}")

    events = doc["events"]
    counts = {(e["side"], e["kind"]): 0 for e in events}
    for e in events:
        counts[(e["side"], e["kind"])] += 1
    lines += ["", "events: " + (", ".join(f"{side} {kind.upper()} {n}" for (side, kind), n in sorted(counts.items()))
                                or "none")]  # fmt: skip

    strides = doc["strides"]
    n_steady = sum(1 for s in strides if s["steady"])
    lines += ["", f"strides ({len(strides)}, {n_steady} steady; times on the clip clock)"]
    rows = []
    for s in strides[:MAX_STRIDES_SHOWN]:
        rows.append((s["side"], f"{s['ic_s']:.3f}", f"{s['next_ic_s']:.3f}", _num(s["duration_s"], ".3f"),
                     _num(s["stance_s"], ".3f"), _num(s["length_m"], ".3f"), _num(s["step_length_m"], ".3f"),
                     "steady" if s["steady"] else (s.get("excluded") or "")))  # fmt: skip
    if rows:
        lines += _table(("side", "ic_s", "next_ic_s", "time_s", "stance_s", "length_m", "step_m", ""), rows)
    if len(strides) > MAX_STRIDES_SHOWN:
        lines.append(f"  … {len(strides) - MAX_STRIDES_SHOWN} more (see --json)")

    lines += ["", "metrics"]
    rows = [(name, _num(value, ".4g")) for name, value in doc["metrics"].items()]
    lines += _table(("name", "value"), rows) if rows else ["  none"]
    if doc["missing"]:
        lines += ["", "metrics not given"]
        for name, v in doc["missing"].items():
            lines.append(f"  {name}: {v['message']}")
    context = doc.get("context") or {}
    if context.get("speed_category"):
        lines.append(f"  speed category: {context['speed_category']}")

    angles = doc["joint_angles"]
    lines += ["", "joint angles over the steady walk, degrees"]
    rows = [(name, _num(r["min_deg"], ".1f"), _num(r["max_deg"], ".1f"), _num(r["range_deg"], ".1f"))
            for name, r in angles["ranges"].items()]  # fmt: skip
    lines += _table(("angle", "min", "max", "range"), rows) if rows else ["  none"]
    for name, v in angles["missing"].items():
        lines.append(f"  {name}: {v['message']}")
    placement = doc["placement"]
    moved = {site: sid for site, sid in placement["proposed_assignment"].items()
             if (clip.get("sites") or {}).get(site) not in (None, sid)}  # fmt: skip
    if moved and not placement["relabelled"]:
        lines += ["", "the placement check proposes: " + ", ".join(f"{sid} on {site}" for site, sid in moved.items())
                  + " (run with --relabel to analyse it so)"]  # fmt: skip
    return "\n".join(lines)
