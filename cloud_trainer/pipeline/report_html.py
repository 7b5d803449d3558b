"""The HTML body of the therapist's report: tables, highlight sentences and small inline SVG charts.

Everything is escaped; nothing is loaded from elsewhere (no scripts, fonts or images), so the page opens offline and
from the results library as it is. Highlighted cells carry a marker (▲) as well as a colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

LEVEL_COLOURS = ("#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08306b")
GROUP_WORDS = {
    "lumbar": "Trunk (lumbar)", "hip_r": "Right hip", "knee_r": "Right knee", "ankle_r": "Right ankle",
    "hip_l": "Left hip", "knee_l": "Left knee", "ankle_l": "Left ankle",
}  # fmt: skip
TASK_WORDS = {"slope": "Ramp (slope ascent)", "stairs": "Stairs (ascent)"}


def render_body(report: Mapping) -> str:
    parts = [
        _header(report),
        f'<div class="decision" role="note"><strong>{escape(report["decision_support"])}</strong></div>',
        _glance(report),
    ]
    for task, doc in report["tasks"].items():
        parts.append(_task_section(task, doc, report.get("level_ground")))
    parts.append(_how_to_read(report))
    parts.append(_files(report))
    if report.get("notes"):
        items = "".join(f"<li>{escape(n)}</li>" for n in report["notes"])
        parts.append(f"<section><h2>Notes on this run</h2><ul>{items}</ul></section>")
    parts.append(
        f'<footer><p class="decision-small">{escape(report["decision_support"])}</p>{_run_line(report)}</footer>'
    )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------- sections


def _header(report: Mapping) -> str:
    p = report["patient"]
    side = p.get("affected_side") or "none recorded"
    facts = [
        ("Patient", p.get("pseudonym") or "—"),
        ("Height", _num(p.get("height_m"), "m", 2)),
        ("Mass", _num(p.get("mass_kg"), "kg", 0)),
        ("Affected side", side),
        ("Level-ground speed (measured)", _num(p.get("speed_m_s"), "m/s", 2)),
        ("Stride length (measured)", _num(p.get("stride_length_m"), "m", 2)),
        ("Report created", report.get("created_utc", "")),
    ]
    cells = "".join(f"<div><span>{escape(k)}</span><b>{escape(str(v))}</b></div>" for k, v in facts)
    return (
        "<header><h1>Predicted walking on ramps and stairs</h1>"
        '<p class="sub">StrideTwin simulation of this patient, built from one 20 m level-ground walk</p>'
        f'<div class="facts">{cells}</div></header>'
    )


def _glance(report: Mapping) -> str:
    items = []
    for task, doc in report["tasks"].items():
        s = doc["summary"]
        levels = {lv["level"]: lv for lv in doc["levels"]}
        parts = []
        if s["highest_level_all_reached"]:
            lv = levels[s["highest_level_all_reached"]]
            parts.append(
                f"every predicted walk reached the top up to level {s['highest_level_all_reached']} "
                f"({lv['course']['text']})"
            )
        else:
            parts.append("no level was reached by every predicted walk")
        if s["first_level_with_falls"]:
            parts.append(f"falls predicted from level {s['first_level_with_falls']}")
        else:
            parts.append("no falls predicted")
        if s["first_level_with_highlights"]:
            parts.append(f"first highlighted change at level {s['first_level_with_highlights']}")
        items.append(f"<li><b>{escape(TASK_WORDS.get(task, task))}</b>: {escape('; '.join(parts))}.</li>")
    return f'<section class="glance"><h2>At a glance</h2><ul>{"".join(items)}</ul></section>'


def _task_section(task: str, doc: Mapping, ground: Mapping | None) -> str:
    levels = doc["levels"]
    rows = []
    if ground is not None:
        rows.append(_row(ground, "Level ground (patient's own walk)", baseline_row=True))
    for lv in levels:
        rows.append(_row(lv, f"Level {lv['level']}: {lv['course']['text']}"))
    paretic = (levels[0]["compensation"]["paretic_side"] if levels else None) or None
    knee_head = "Paretic knee flexion range °" if paretic else "Knee flexion range ° (L / R)"
    head = (
        "<tr><th>Course</th><th>Reached top</th><th>Falls</th><th>Trunk sway °</th><th>Posture similarity %</th>"
        f"<th>{knee_head}</th><th>Hip abduction in swing °</th><th>Pelvic hike °</th><th>Swing-time ratio</th>"
        "<th>Push survived N (forward / sideways)</th><th>Files</th></tr>"
    )
    sentences = []
    rows_with_marks = ([("Level ground", ground)] if ground is not None else []) + [
        (f"Level {lv['level']}", lv) for lv in levels
    ]
    for name, lv in rows_with_marks:
        if lv.get("highlights"):
            text = "; ".join(h["text"] for h in lv["highlights"])
            sentences.append(f"<li><b>{escape(name)}</b> ▲ {escape(text)}</li>")
    highlight_list = (
        f'<ul class="highlights">{"".join(sentences)}</ul>'
        if sentences
        else "<p>No value crosses a highlight threshold at any level.</p>"
    )
    onnx = doc.get("onnx")
    onnx_line = ""
    if onnx:
        onnx_line = (
            f'<p class="small">Policy for offline playback: <a href="{escape(onnx["file"])}">{escape(onnx["file"])}</a>'
            f' (manifest <a href="{escape(onnx["manifest"])}">{escape(onnx["manifest"])}</a>; ONNX Runtime matches '
            f"PyTorch to {onnx['max_abs_diff']:.1e}).</p>"
        )
    training = doc.get("training") or {}
    training_line = _training_line(training, len(levels))
    return (
        f"<section><h2>{escape(TASK_WORDS.get(task, task))}</h2>{_coverage(training, len(levels))}"
        f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'
        f"<h3>Where compensations or instability appear</h3>{highlight_list}"
        f"<h3>Trunk lateral sway by level</h3>{_sway_chart(levels, ground)}"
        f"<h3>Activation proxies over the gait cycle</h3>{_activation_charts(levels, ground)}"
        f"{onnx_line}{training_line}</section>"
    )


def _row(lv: Mapping, label: str, baseline_row: bool = False) -> str:
    keys = {h["key"] for h in lv.get("highlights", [])}

    def cell(text: str, *flag_keys: str) -> str:
        flagged = any(k in keys for k in flag_keys)
        mark = " ▲" if flagged else ""
        return f'<td class="{"hl" if flagged else ""}">{escape(text)}{mark}</td>'

    n = lv["n_episodes"]
    falls = lv["falls"]
    fall_text = f"{falls['n']}/{n}" + (f": {falls['summary']}" if falls.get("summary") else "")
    sim = lv.get("posture_similarity") or {}
    comp = lv["compensation"]
    side = comp["paretic_side"]
    sides = comp["sides"]

    def side_value(key: str, digits: int = 0) -> str:
        if side:
            return _num(sides[side][key], "", digits)
        return f"{_num(sides['left'][key], '', digits)} / {_num(sides['right'][key], '', digits)}"

    push = lv.get("push_robustness") or {}
    push_text = "—"
    if push:
        push_text = f"{_num(push.get('forward_n'), '', 0)} / {_num(push.get('lateral_n'), '', 0)}"
    files = []
    art = lv.get("artifacts") or {}
    if art.get("video"):
        files.append(f'<a href="{escape(art["video"])}">video</a>')
    if art.get("angles_csv"):
        files.append(f'<a href="{escape(art["angles_csv"])}">angles</a>')
    cls = ' class="ground"' if baseline_row else ""
    return (
        f'<tr{cls}><th scope="row">{escape(label)}</th>'
        + cell(f"{lv['reached']['n']}/{n}", "not_reached")
        + cell(fall_text, "falls")
        + cell(_num(lv["trunk_sway"]["peak_to_peak_deg"], "", 1), "trunk_sway")
        + cell(_num(sim.get("similarity_pct"), "", 0))
        + cell(side_value("knee_flexion_range_deg"), "knee_range")
        + cell(side_value("swing_hip_abduction_deg"), "circumduction")
        + cell(side_value("pelvic_hike_deg", 1), "pelvic_hike")
        + cell(_num(comp["swing_time_ratio"], "", 2), "asymmetry")
        + cell(push_text)
        + f"<td>{' · '.join(files) or '—'}</td></tr>"
    )


def _training_line(training: Mapping, n_levels: int) -> str:
    """The training's figures in words (levels mastered, simulated steps, training time, why it stopped): for the
    research engineer who reads the report beside training.json, not a dump of its keys."""
    facts = []
    mastered = training.get("levels_mastered")
    if isinstance(mastered, int) and not isinstance(mastered, bool):
        facts.append(f"{mastered} of {n_levels} levels mastered")
    samples, wall_s = training.get("samples"), training.get("wall_s")
    if isinstance(samples, int | float):
        steps = f"{int(samples):,} simulated control steps"
        if isinstance(wall_s, int | float):
            minutes, seconds = divmod(round(wall_s), 60)
            steps += f" in {minutes} min {seconds:02d} s"
        facts.append(steps)
    if training.get("stopped"):
        facts.append(f"stopped: {training['stopped']}")
    return f'<p class="small">Training: {escape("; ".join(facts))}.</p>' if facts else ""


def _coverage(training: Mapping, n_levels: int) -> str:
    """One plain sentence on which levels the model learned: above them, a fall may mean the model has not learned the
    level within this run's compute, not that the patient cannot walk it."""
    mastered = training.get("levels_mastered")
    if not isinstance(mastered, int) or isinstance(mastered, bool):
        return ""
    if mastered >= n_levels:
        return f"<p>The model mastered all {n_levels} levels in training.</p>"
    done = f"levels 1 to {mastered}" if mastered > 1 else ("level 1" if mastered == 1 else "no level")
    limit = "compute budget"
    if training.get("stopped") == "time limit reached":
        limit = "time limit (this computer trained fewer samples than the budget allows within it)"
    return (
        f"<p><b>The model mastered {done} in training.</b> The levels above were not mastered within this run's "
        f"{limit}: read a fall or an unreached top there as the limit of what was learned, not as proof that "
        "the patient cannot walk that level.</p>"
    )


def _how_to_read(report: Mapping) -> str:
    rules = "".join(
        f'<tr><th scope="row">{escape(t["label"])}</th><td>{escape(t["rule"])}</td><td>{escape(t["source"])}</td></tr>'
        for t in report["thresholds"]
    )
    return (
        "<section><h2>How to read this report</h2><dl>"
        "<dt>Reached top, falls</dt><dd>Several simulated walks per level, each starting at another moment of the "
        "gait cycle, at the patient's own speed and stride length. A fall is any body part other than a foot touching "
        "the ground, or the pelvis dropping below 60 % of its standing height.</dd>"
        "<dt>Trunk sway</dt><dd>Side-to-side lean of the trunk (pelvis to the base of the neck) seen from the front; "
        "peak-to-peak range over a walk, mean over the walks.</dd>"
        "<dt>Posture similarity</dt><dd>How closely the predicted hip, knee and pelvis angles over the gait cycle "
        "follow the patient's own level-ground walk: 100 % is identical, 0 % differs by as much as the joints move. "
        "Lower values on harder levels show the walk changing.</dd>"
        "<dt>Compensations</dt><dd>Knee flexion range over the gait cycle; hip abduction at its peak in swing "
        "(circumduction); pelvic obliquity raising the swinging side (pelvic hike); swing-time ratio of the two legs "
        "(1 = symmetric).</dd>"
        "<dt>Activation proxies</dt><dd>The torque limit the simulated controller allows each joint group, as a "
        "fraction of that joint's strength ceiling, averaged over the gait cycle (0 % = initial contact of the "
        "paretic foot, else the right). Higher curves on harder levels show where the model needs more effort.</dd>"
        "<dt>Push robustness</dt><dd>The largest push on the pelvis, lasting 0.2 s, that the simulated walker "
        "recovers from without falling, on the ramp or stairs, forward and sideways (the smaller of left and "
        "right); — where the walker fell before reaching the push point.</dd></dl>"
        "<h3>Highlight thresholds and their sources</h3>"
        f'<div class="scroll"><table class="rules"><tr><th>Highlight</th><th>When</th><th>Source</th></tr>'
        f"{rules}</table></div></section>"
    )


def _files(report: Mapping) -> str:
    rows = "".join(
        f'<tr><td>{escape(str(a.get("kind", "")))}</td><td><a href="{escape(str(a.get("path", "")))}">'
        f"{escape(str(a.get('path', '')))}</a></td><td>{escape(str(a.get('task') or ''))}</td>"
        f"<td>{escape(str(a.get('level') or ''))}</td></tr>"
        for a in report.get("artifacts", [])
    )
    if not rows:
        return ""
    return (
        '<section><h2>Files</h2><div class="scroll"><table class="files"><tr><th>Kind</th><th>File</th><th>Task</th>'
        f"<th>Level</th></tr>{rows}</table></div></section>"
    )


def _run_line(report: Mapping) -> str:
    run = report.get("run") or {}
    facts = [f"{k}: {v}" for k, v in run.items() if isinstance(v, str | int | float) and not isinstance(v, bool)]
    return f'<p class="small">{escape(" · ".join([report["schema"], *facts]))}</p>'


# ---------------------------------------------------------------------------------------------------- charts


def _sway_chart(levels: Sequence[Mapping], ground: Mapping | None) -> str:
    values = [lv["trunk_sway"]["peak_to_peak_deg"] for lv in levels]
    base = ground["trunk_sway"]["peak_to_peak_deg"] if ground else None
    finite = [v for v in [*values, base] if v is not None]
    if not finite:
        return "<p>No walking long enough to measure sway.</p>"
    w, h, left, bottom, top = 420, 170, 40, 28, 12
    y_max = max(10.0, max(finite) * 1.15, (base or 0) + 7)
    plot_h = h - bottom - top
    bar_w = (w - left - 10) / max(len(levels), 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    out = [_svg_open(w, h, "Trunk lateral sway per level, degrees")]
    out += _y_axis(left, top, plot_h, w, y_max, "°")
    for k, (lv, v) in enumerate(zip(levels, values, strict=True)):
        x = left + k * bar_w + 0.15 * bar_w
        if v is not None:
            flagged = any(hl["key"] == "trunk_sway" for hl in lv.get("highlights", []))
            colour = "#d95f02" if flagged else LEVEL_COLOURS[min(k, len(LEVEL_COLOURS) - 1)]
            out.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{0.7 * bar_w:.1f}" height="{y(0) - y(v):.1f}" '
                       f'fill="{colour}"><title>level {lv["level"]}: {v:.1f}°</title></rect>')  # fmt: skip
            out.append(f'<text x="{x + 0.35 * bar_w:.1f}" y="{y(v) - 3:.1f}" class="val">{v:.1f}</text>')
        out.append(f'<text x="{x + 0.35 * bar_w:.1f}" y="{h - 10}" class="tick">L{lv["level"]}</text>')
    legend = ""
    if base is not None:
        out.append(f'<line x1="{left}" x2="{w - 5}" y1="{y(base):.1f}" y2="{y(base):.1f}" class="base"/>')
        limit = base + 5.0
        out.append(f'<line x1="{left}" x2="{w - 5}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" class="limit"/>')
        legend = (
            f'<div class="legend"><span><i class="dash"></i>level ground ({base:.1f}°)</span>'
            '<span><i class="dot"></i>highlight threshold: level ground + 5°</span>'
            '<span><i style="background:#d95f02"></i>highlighted level</span></div>'
        )
    out.append("</svg>")
    return f"<figure>{''.join(out)}{legend}</figure>"


def _activation_charts(levels: Sequence[Mapping], ground: Mapping | None) -> str:
    available = [lv for lv in levels if lv["activation"]["torque_limit_fraction"]]
    if not available:
        return "<p>No complete gait cycles to chart.</p>"
    first = available[0]["activation"]
    pct = first["cycle_pct"]
    side = first["cycle_side"]
    groups = list(first["torque_limit_fraction"])
    charts = []
    for group in groups:
        series = []
        if ground is not None and ground["activation"]["torque_limit_fraction"]:
            series.append(("level ground", "#222", ground["activation"]["torque_limit_fraction"][group], True))
        for lv in available:
            colour = LEVEL_COLOURS[min(lv["level"] - 1, len(LEVEL_COLOURS) - 1)]
            series.append((f"level {lv['level']}", colour, lv["activation"]["torque_limit_fraction"][group], False))
        charts.append(_line_chart(GROUP_WORDS.get(group, group), pct, series))
    legend = "".join(
        f'<span><i style="background:{LEVEL_COLOURS[min(lv["level"] - 1, 4)]}"></i>level {lv["level"]}</span>'
        for lv in available
    )
    if ground is not None:
        legend = '<span><i class="dash"></i>level ground</span>' + legend
    caption = (
        f"Torque limit set by the controller, % of each joint's ceiling, over the gait cycle from initial contact of "
        f"the {escape(side)} foot (0 %) to its next (100 %)."
    )
    return (
        f'<div class="legend">{legend}</div><div class="charts">{"".join(charts)}</div><p class="small">{caption}</p>'
    )


def _line_chart(title: str, x_pct: Sequence[float], series: Sequence[tuple], w: int = 230, h: int = 150) -> str:
    left, bottom, top, right = 34, 24, 18, 14
    plot_w, plot_h = w - left - right, h - bottom - top

    def x(v: float) -> float:
        return left + plot_w * v / 100.0

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    out = [_svg_open(w, h, f"{title}: torque limit over the gait cycle")]
    out.append(f'<text x="{left}" y="12" class="title">{escape(title)}</text>')
    out += _y_axis(left, top, plot_h, w - right, 100.0, "%", ticks=(0, 50, 100))
    for p in (0, 50, 100):
        out.append(f'<text x="{x(p):.1f}" y="{h - 8}" class="tick">{p}</text>')
    for label, colour, values, dashed in series:
        points = " ".join(f"{x(p):.1f},{y(min(max(v, 0.0), 1.0)):.1f}" for p, v in zip(x_pct, values, strict=True))
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}>'
            f"<title>{escape(label)}</title></polyline>"
        )
    out.append("</svg>")
    return "".join(out)


def _svg_open(w: int, h: int, label: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" ' \
        f'aria-label="{escape(label)}">'  # fmt: skip


def _y_axis(left: float, top: float, plot_h: float, right: float, y_max: float, unit: str, ticks=None) -> list[str]:
    ticks = ticks or _nice_ticks(y_max)
    out = []
    for t in ticks:
        yy = top + plot_h * (1 - t / y_max)
        out.append(f'<line x1="{left}" x2="{right}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" class="tick" text-anchor="end">{t:g}{unit}</text>')
    return out


def _nice_ticks(y_max: float) -> list[float]:
    for step in (1, 2, 5, 10, 20, 50, 100):
        if y_max / step <= 5:
            return [k * step for k in range(int(y_max // step) + 1)]
    return [0, y_max]


def _num(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return f"{text} {unit}".strip()
