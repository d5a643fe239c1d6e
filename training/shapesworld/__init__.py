"""ShapesWorld v1.1: the procedurally generated world and benchmark of ``WORLD.md`` beside this file.

spec (constants, dataclasses) -> sample (seeded scenes, splits) -> render (clips) ->
text (sentences, parsers) -> detect (clip -> attributes) -> score (benchmark) -> export (dataset).

The bundled model's parts and tools are modules of their own, imported by name (most need torch):
tokenizer, text_encoder, vae -> components (the frozen parts) -> assemble (the pipeline folder); examples
(the studio's example clips); evaluate (the benchmark of a trained pipeline), table and intervals (its table,
each number with its 95% interval); ablation.sh and ablation_table (the model card's ablation rows and table).
EXPERIMENTS.md says what was tried on the way to the bundled model and what it gave.

The export names (export_dataset, read_video, write_video) load lazily, so importing the package
needs no imageio and `python -m training.shapesworld.export` runs without a runpy warning.
"""

from __future__ import annotations

import importlib
from typing import Any

from .detect import DetectedObject, Detection, detect, palette_indices
from .render import render, shape_mask
from .sample import (
    SPLIT_SEED_OFFSETS,
    SPLITS,
    clip_seed,
    iter_split,
    main_posterior,
    sample_scene,
    scene_for_seed,
    split_of_seed,
)
from .score import (
    ALL_ATTRS,
    DETAIL_ATTRS,
    PROMPT_ATTRS,
    SECOND_ATTRS,
    aggregate,
    exact_rate,
    is_exact,
    object_counts,
    object_scores,
    order_visible,
    score_caption,
    score_detection,
    score_keys,
    score_prompt_agreement,
)
from .spec import (
    BACKGROUNDS,
    CELLS,
    COLORS,
    FPS,
    HEIGHT,
    HELD_OUT_PAIRS,
    MOTIONS,
    NUM_FRAMES,
    SHAPES,
    SIZES,
    STEP_PX,
    WIDTH,
    ObjectSpec,
    Scene,
    cell_of_point,
)
from .text import (
    VOCABULARY,
    ParsedCaption,
    ParsedObject,
    ParsedPrompt,
    brief_prompt,
    describe,
    detailed_caption,
    detokenize_words,
    format_caption,
    parse_caption,
    parse_prompt,
    tokenize_words,
)

__all__ = [
    "ALL_ATTRS",
    "BACKGROUNDS",
    "CELLS",
    "COLORS",
    "DETAIL_ATTRS",
    "FPS",
    "HEIGHT",
    "HELD_OUT_PAIRS",
    "MOTIONS",
    "NUM_FRAMES",
    "PROMPT_ATTRS",
    "SECOND_ATTRS",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "SPLIT_SEED_OFFSETS",
    "STEP_PX",
    "VOCABULARY",
    "WIDTH",
    "DetectedObject",
    "Detection",
    "ObjectSpec",
    "ParsedCaption",
    "ParsedObject",
    "ParsedPrompt",
    "Scene",
    "aggregate",
    "brief_prompt",
    "cell_of_point",
    "clip_seed",
    "describe",
    "detailed_caption",
    "detect",
    "detokenize_words",
    "exact_rate",
    "export_dataset",
    "format_caption",
    "order_visible",
    "is_exact",
    "iter_split",
    "main_posterior",
    "palette_indices",
    "parse_caption",
    "parse_prompt",
    "read_video",
    "render",
    "sample_scene",
    "scene_for_seed",
    "object_counts",
    "object_scores",
    "score_caption",
    "score_detection",
    "score_keys",
    "score_prompt_agreement",
    "shape_mask",
    "split_of_seed",
    "tokenize_words",
    "write_video",
]

_LAZY = {"export_dataset": "export", "read_video": "export", "write_video": "export"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
