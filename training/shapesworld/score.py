"""Per-attribute 0/1 scores of the ShapesWorld benchmark, and their aggregation.

Every score dict maps attribute -> 0 or 1. The second-object attributes (SECOND_ATTRS) are
present only when the reference (the scene for captioning, the caption for text-to-video) has a
second object; `second_present` is 1 when prediction and reference agree on whether there is one.
A caption that does not parse scores 0 on every attribute.

Captioning matches the caption's objects to the scene's as v1.1 of the spec says ("Which object is the
main one"): the main object is drawn on top, so only a clip whose two objects overlap shows which one is
main; elsewhere the caption is scored under whichever assignment of its objects matches more attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from itertools import permutations
from typing import Protocol

import numpy as np

from .detect import Detection
from .render import render
from .spec import Scene
from .text import ParsedCaption, detailed_caption, parse_caption, parse_prompt

PROMPT_ATTRS: list[str] = ["color", "shape", "motion"]
SECOND_ATTRS: list[str] = ["second_color", "second_shape", "second_size", "second_cell", "second_motion"]
DETAIL_ATTRS: list[str] = ["size", "cell", "background", "second_present", *SECOND_ATTRS]
ALL_ATTRS: list[str] = [*PROMPT_ATTRS, *DETAIL_ATTRS]
_OBJECT_FIELDS = ("color", "shape", "size", "cell", "motion")


class _Object(Protocol):
    """Anything carrying the five object phrases: ObjectSpec, ParsedObject, DetectedObject."""

    color: str
    shape: str
    size: str
    cell: str
    motion: str


def score_keys(has_second: bool) -> list[str]:
    """Attributes scored against a reference with / without a second object."""
    return ALL_ATTRS if has_second else [a for a in ALL_ATTRS if a not in SECOND_ATTRS]


def _compare(
    main: _Object | None,
    background: str | None,
    second: _Object | None,
    has_second: bool,
    ref_main: _Object,
    ref_background: str,
    ref_second: _Object | None,
) -> dict[str, int]:
    scores = {f: int(main is not None and getattr(main, f) == getattr(ref_main, f)) for f in _OBJECT_FIELDS}
    scores["background"] = int(background == ref_background)
    scores["second_present"] = int(has_second == (ref_second is not None))
    if ref_second is not None:
        for f in _OBJECT_FIELDS:
            scores[f"second_{f}"] = int(second is not None and getattr(second, f) == getattr(ref_second, f))
    return {k: scores[k] for k in score_keys(ref_second is not None)}


def _readings(scene: Scene) -> list[Scene]:
    """The orders in which a caption may describe ``scene``: its own, and in a two-object clip whose objects
    never overlap (the clip does not show which one is main) also the swapped one."""
    if order_visible(scene):
        return [scene]
    return [scene, dataclasses.replace(scene, main=scene.second, second=scene.main)]


def score_caption(caption_text: str, scene: Scene) -> dict[str, int]:
    """Captioning (video -> text): score a generated caption against the true scene.

    Where the clip does not show which object is main, the caption's main object is matched to whichever
    scene object gives more matching attributes (ties: the drawing order); ``color`` etc. then score the
    caption's first object against the scene object it was matched to, ``second_*`` the other one.
    """
    parsed = parse_caption(caption_text)
    if parsed is None:
        return dict.fromkeys(score_keys(scene.second is not None), 0)
    readings = (
        _compare(
            parsed.main,
            parsed.background,
            parsed.second,
            parsed.second is not None,
            ref.main,
            ref.background,
            ref.second,
        )
        for ref in _readings(scene)
    )
    return max(readings, key=lambda scores: sum(scores.values()))  # the first of equals: the drawing order


def score_detection(detection: Detection, caption: ParsedCaption | str | None) -> dict[str, int]:
    """Text-to-video: score the detector's reading of a generated clip against its caption.

    When the detector established which object is on top (`order_known` with two objects), that
    one is the main object. Otherwise a clip cannot tell main from second, so the detected
    objects are assigned to the caption's objects in the way that matches most attributes (ties:
    the detector's order). A caption that is None or does not parse scores 0 everywhere (without
    second-object keys, since no reference says there is one).
    """
    parsed = parse_caption(caption) if isinstance(caption, str) else caption
    if parsed is None:
        return dict.fromkeys(score_keys(False), 0)
    objects = detection.objects
    if detection.order_known and len(objects) == 2:
        assignments = [objects]
    else:
        assignments = list(permutations([*objects, None, None][:2]))
    best: dict[str, int] | None = None
    for main, second in assignments:
        scores = _compare(
            main,
            detection.background,
            second,
            len(objects) == 2,
            parsed.main,
            parsed.background,
            parsed.second,
        )
        if best is None or sum(scores.values()) > sum(best.values()):
            best = scores
    assert best is not None
    return best


def score_prompt_agreement(caption_text: str, prompt_text: str) -> dict[str, int]:
    """Joint generation: does the generated caption's main object match the brief prompt?

    Returns {color, shape, motion} -> 0/1; all 0 when the caption does not parse. Raises
    ValueError when the prompt itself does not parse (a caller error, not a model error).
    """
    return _prompt_scores(parse_caption(caption_text), _parse_brief(prompt_text))


def _parse_brief(prompt_text: str):
    prompt = parse_prompt(prompt_text)
    if prompt is None:
        raise ValueError(f"not a brief prompt: {prompt_text!r}")
    return prompt


def _prompt_scores(obj, prompt) -> dict[str, int]:
    """{color, shape, motion} -> 0/1: does ``obj`` (a parsed caption or a detected object; None: nothing) have the
    prompt's?"""
    return {a: int(obj is not None and getattr(obj, a) == getattr(prompt, a)) for a in PROMPT_ATTRS}


def object_scores(row: dict[str, int]) -> dict[str, int]:
    """Per-object accuracy of one scored clip (captioning or text-to-video): ``main_object`` is 1 when all five
    of the main object's attributes (colour, shape, size, cell, motion) are right, ``second_object`` the same for
    the second object, present only where the reference has one."""
    out = {"main_object": int(all(row[f] for f in _OBJECT_FIELDS))}
    if "second_color" in row:
        out["second_object"] = int(all(row[f"second_{f}"] for f in _OBJECT_FIELDS))
    return out


def object_counts(caption: ParsedCaption | str | None, detection: Detection) -> dict[str, int]:
    """Joint generation: how many objects the caption names and the clip shows. ``second_named``: the caption
    parses and names a second object; ``second_drawn``: the detector reads two objects; ``counts_agree``: the
    caption parses and names as many objects as the clip shows."""
    parsed = parse_caption(caption) if isinstance(caption, str) else caption
    named = None if parsed is None else 1 + (parsed.second is not None)
    drawn = len(detection.objects)
    return {"second_named": int(named == 2), "second_drawn": int(drawn == 2), "counts_agree": int(named == drawn)}


def aggregate(scores: Iterable[dict[str, int]]) -> dict[str, float]:
    """Mean of each attribute over the dicts that contain it (ALL_ATTRS order first)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in scores:
        for key, value in row.items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
    order = [a for a in ALL_ATTRS if a in sums] + sorted(k for k in sums if k not in ALL_ATTRS)
    return {k: sums[k] / counts[k] for k in order}


def order_visible(scene: Scene) -> bool:
    """Whether a clip shows which object is the main one: only where the two overlap (main is drawn on top)."""
    if scene.second is None:
        return True
    swapped = dataclasses.replace(scene, main=scene.second, second=scene.main)
    return not np.array_equal(render(scene), render(swapped))


def is_exact(caption_text: str, scene: Scene) -> bool:
    """True when the caption is exactly the scene's detailed caption (outer whitespace ignored), in either
    order of the objects where the clip does not show which one is main (the matching of `score_caption`)."""
    text = caption_text.strip()
    return any(text == detailed_caption(ref) for ref in _readings(scene))


def exact_rate(captions: Sequence[str], scenes: Sequence[Scene]) -> float:
    """Fraction of captions that are exactly their scene's detailed caption."""
    if len(captions) != len(scenes):
        raise ValueError(f"{len(captions)} captions for {len(scenes)} scenes")
    if not captions:
        return 0.0
    return sum(is_exact(c, s) for c, s in zip(captions, scenes, strict=True)) / len(captions)


# Text-to-video: what was drawn for what was asked
def prompt_drawn(detection: Detection, prompt: str) -> dict[str, int]:
    """A clip generated from a brief prompt: its colour, shape and motion (0/1 each) read from the detected object
    that matches most of them (the first of equals); all 0 when nothing is drawn."""
    want = _parse_brief(prompt)
    rows = [_prompt_scores(o, want) for o in detection.objects] or [_prompt_scores(None, want)]
    return max(rows, key=lambda r: sum(r.values()))


def drawn_main(detection: Detection, color: str):
    """The detected object of the asked main object's colour (else the detector's main object), or None."""
    same = [o for o in detection.objects if o.color == color]
    return same[0] if same else detection.main


def shapes_drawn(asked: list[str], drawn: list) -> dict:
    """Per shape asked: how often each shape (or nothing) was read back, and the median fill ratio drawn."""
    out = {}
    for shape in sorted(set(asked)):
        objects = [o for a, o in zip(asked, drawn) if a == shape]
        read = [o.shape if o is not None else "none" for o in objects]
        fills = [o.fill_ratio for o in objects if o is not None]
        out[shape] = {
            "drawn": {name: read.count(name) for name in sorted(set(read))},
            "fill_median": round(float(np.median(fills)), 3) if fills else None,
        }
    return out
