"""The evaluation table: one row per ShapesWorld metric, one column per result, 95% intervals in brackets."""

import numpy as np

from . import DETAIL_ATTRS, PROMPT_ATTRS, object_scores
from .intervals import bootstrap_interval, score_matrix, wilson_interval


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


# Quality bars on the test split (the table's bar column): the showcase model's targets
BARS = {
    ("captioning", "color"): 0.90,
    ("captioning", "shape"): 0.90,
    ("captioning", "motion"): 0.90,
    ("captioning", "second_color"): 0.70,
    ("captioning", "second_shape"): 0.70,
    ("captioning", "second_size"): 0.70,
    ("captioning", "second_cell"): 0.70,
    ("captioning", "second_motion"): 0.70,
    ("captioning", "detail_attrs"): 0.85,
    ("text_to_video", "color"): 0.90,
    ("text_to_video", "shape"): 0.80,
    ("text_to_video", "motion"): 0.85,
    ("text_to_video", "cell"): 0.80,
    ("text_to_video", "background"): 0.98,
    ("joint", "caption_vs_prompt"): 0.95,
    ("joint", "detector_vs_caption"): 0.85,
}
# Joint generation from a brief prompt should name and draw a second object about as often as the world has one
# (half its clips): the bar column gives that share
SHARES = {("joint", "second_named"): 0.5, ("joint", "second_drawn"): 0.5}

ROWS = [
    ("captioning", "color", "captioning: main colour"),
    ("captioning", "shape", "captioning: main shape"),
    ("captioning", "motion", "captioning: main motion"),
    ("captioning", "size", "captioning: size"),
    ("captioning", "cell", "captioning: cell"),
    ("captioning", "background", "captioning: background"),
    ("captioning", "second_present", "captioning: second object present"),
    ("captioning", "second_color", "captioning: second colour"),
    ("captioning", "second_shape", "captioning: second shape"),
    ("captioning", "second_size", "captioning: second size"),
    ("captioning", "second_cell", "captioning: second cell"),
    ("captioning", "second_motion", "captioning: second motion"),
    ("captioning", "prompt_attrs", "captioning: prompt attributes (mean)"),
    ("captioning", "detail_attrs", "captioning: detail attributes (mean)"),
    ("captioning", "exact", "captioning: exact sentence"),
    ("captioning", "main_object", "captioning: main object, all five attributes"),
    ("captioning", "second_object", "captioning: second object, all five attributes"),
    ("captioning", "parsed", "captioning: caption parses (info)"),
    ("captioning", "brief_prompt_attrs", "captioning: prompt attributes, brief-prompt grammar (info)"),
    ("text_to_video", "color", "text-to-video: colour"),
    ("text_to_video", "shape", "text-to-video: shape"),
    ("text_to_video", "motion", "text-to-video: motion"),
    ("text_to_video", "size", "text-to-video: size"),
    ("text_to_video", "cell", "text-to-video: cell"),
    ("text_to_video", "background", "text-to-video: background"),
    ("text_to_video", "second_present", "text-to-video: second object present"),
    ("text_to_video", "detail_attrs", "text-to-video: detail attributes (mean)"),
    ("text_to_video", "main_object", "text-to-video: main object, all five attributes"),
    ("text_to_video", "second_object", "text-to-video: second object, all five attributes"),
    ("text_to_video_brief", "color", "text-to-video from the brief prompt: colour"),
    ("text_to_video_brief", "shape", "text-to-video from the brief prompt: shape"),
    ("text_to_video_brief", "motion", "text-to-video from the brief prompt: motion"),
    ("text_to_video_brief", "all3", "text-to-video from the brief prompt: all three"),
    ("joint", "caption_vs_prompt", "joint: caption agrees with prompt"),
    ("joint", "detector_vs_caption", "joint: detector agrees with caption"),
    ("joint", "second_named", "joint: captions naming a second object"),
    ("joint", "second_drawn", "joint: clips showing a second object"),
    ("joint", "counts_agree", "joint: clip shows as many objects as the caption names"),
]


def _value(result: dict, task: str, key: str):
    section = result.get(task)
    if section is None:
        return None
    if key == "brief_prompt_attrs":
        return _mean(section["brief_grammar"].values())
    if key in section and not isinstance(section[key], dict):
        return section[key]
    if key in ("main_object", "second_object"):
        return section.get("objects", {}).get(key)
    return section.get("attrs", {}).get(key)


def _interval(result: dict, task: str, key: str) -> tuple[float, float] | None:
    """The 95% interval over the clips of the number ``_value`` reads (``training.shapesworld.intervals``):
    Wilson for one attribute's rate, a bootstrap over clips for a mean of several; None for results written
    without per-clip scores."""
    clips = (result.get(task) or {}).get("per_clip")
    if clips is None:
        return None
    if task == "joint":
        if key == "caption_vs_prompt":
            return bootstrap_interval(score_matrix(clips["agree"], PROMPT_ATTRS))
        if key == "detector_vs_caption":
            return bootstrap_interval(np.array([[_mean(r.values())] for r in clips["detector"]]).reshape(-1, 1))
        # results written before the object counts kept only "second_named"
        rows = [c[key] for c in clips["counts"]] if "counts" in clips else clips.get(key)
        return wilson_interval(sum(rows), len(rows)) if rows else None
    if key in ("exact", "parsed"):
        return wilson_interval(sum(clips[key]), len(clips[key]))
    if key == "brief_prompt_attrs":
        return bootstrap_interval(score_matrix(clips["brief"], PROMPT_ATTRS))
    scores = clips["scores"]
    if key == "all3":
        return wilson_interval(sum(all(r.values()) for r in scores), len(scores))
    if key in ("main_object", "second_object"):
        scores = [object_scores(r) for r in scores]
    if key in ("prompt_attrs", "detail_attrs"):
        present = set().union(*scores) if scores else set()
        keys = [a for a in (PROMPT_ATTRS if key == "prompt_attrs" else DETAIL_ATTRS) if a in present]
        return bootstrap_interval(score_matrix(scores, keys))
    rows = [r[key] for r in scores if key in r]
    return wilson_interval(sum(rows), len(rows)) if rows else None


def _cell(value, interval) -> str:
    if value is None:
        return "–"
    if interval is None or np.isnan(interval[0]):
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} [{100 * interval[0]:.1f}–{100 * interval[1]:.1f}]"


def markdown_table(results: list[dict]) -> str:
    """One column per result (``name (split)``), one row per metric, then the test-split bar. Each number
    carries its 95% interval over the clips in brackets where the result holds per-clip scores."""
    head = " | ".join(f"{r['name']} ({r['split']})" for r in results)
    lines = [f"| metric | {head} | bar (test) |", "|" + "---|" * (len(results) + 2)]
    for task, key, label in ROWS:
        values = [_value(r, task, key) for r in results]
        if all(v is None for v in values):
            continue
        cells = [_cell(v, None if v is None else _interval(r, task, key)) for v, r in zip(values, results)]
        bar, share = BARS.get((task, key)), SHARES.get((task, key))
        bar_text = f"≥ {round(100 * bar)}" if bar else f"≈ {round(100 * share)}" if share else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {bar_text} |")
    return "\n".join(lines) + "\n"
