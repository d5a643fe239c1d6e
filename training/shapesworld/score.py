"""Per-attribute 0/1 scores of the ShapesWorld benchmark, and their aggregation.

Every score dict maps attribute -> 0 or 1. The second-object attributes (SECOND_ATTRS) are
present only when the reference (the scene for captioning, the caption for text-to-video) has a
second object; `second_present` is 1 when prediction and reference agree on whether there is one.
A caption that does not parse scores 0 on every attribute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from itertools import permutations
from typing import Protocol

import numpy as np

from .detect import Detection
from .render import render
from .sample import main_posterior
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


def score_caption(caption_text: str, scene: Scene) -> dict[str, int]:
    """Captioning (video -> text): score a generated caption against the true scene."""
    parsed = parse_caption(caption_text)
    if parsed is None:
        return dict.fromkeys(score_keys(scene.second is not None), 0)
    return _compare(
        parsed.main,
        parsed.background,
        parsed.second,
        parsed.second is not None,
        scene.main,
        scene.background,
        scene.second,
    )


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
    prompt = parse_prompt(prompt_text)
    if prompt is None:
        raise ValueError(f"prompt does not parse: {prompt_text!r}")
    parsed = parse_caption(caption_text)
    return {a: int(parsed is not None and getattr(parsed, a) == getattr(prompt, a)) for a in PROMPT_ATTRS}


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


def order_blind_ceiling(scenes: Iterable[Scene]) -> dict[str, float]:
    """Captioning accuracy of a perfect captioner that cannot see which object is main (information).

    Captions are scored against the scene's order (main first), but in a two-object clip whose objects never
    overlap nothing in the pixels shows which one is main. Such a captioner reads everything else right and
    names first the object more likely to be main where they lie (`main_posterior`: the sampler makes the
    object that leaves less room the likelier main one, a weak cue); it swaps the objects with the remaining
    probability, scoring 0 on each attribute the two differ in. This is its expected per-attribute accuracy
    over ``scenes`` -- the ceiling for any captioner that does not read the overlaps.
    """
    rows = []
    for scene in scenes:
        row = {k: 1.0 for k in score_keys(scene.second is not None)}
        if not order_visible(scene):
            p_main = main_posterior(scene)
            right = max(p_main, 1.0 - p_main)
            for f in _OBJECT_FIELDS:
                if getattr(scene.main, f) != getattr(scene.second, f):
                    row[f] = row[f"second_{f}"] = right
        rows.append(row)
    return aggregate(rows)


def is_exact(caption_text: str, scene: Scene) -> bool:
    """True when the caption is exactly the scene's detailed caption (outer whitespace ignored)."""
    return caption_text.strip() == detailed_caption(scene)


def exact_rate(captions: Sequence[str], scenes: Sequence[Scene]) -> float:
    """Fraction of captions that are exactly their scene's detailed caption."""
    if len(captions) != len(scenes):
        raise ValueError(f"{len(captions)} captions for {len(scenes)} scenes")
    if not captions:
        return 0.0
    return sum(is_exact(c, s) for c, s in zip(captions, scenes, strict=True)) / len(captions)
