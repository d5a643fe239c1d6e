"""Random scenes and the seed ranges of the four splits.

Every clip is named by an integer seed; `scene_for_seed(seed, split)` is a pure function of it
(numpy's PCG64 via `np.random.default_rng(seed)`). Splits use disjoint seed ranges, so a seed
also tells which split a clip came from.

Choices the spec leaves open (documented here once):
- Every attribute is drawn uniformly: background, (colour, shape) pair among the split's allowed
  pairs, size, motion, and the frame-0 corner among all integer positions that keep the object
  fully inside the frame in all 17 frames.
- The second object (probability 1/2) is drawn the same way among the non-held-out pairs that
  differ from the main object in colour AND shape; the whole object is redrawn until the frame-0
  boxes are at least MIN_GAP_PX apart (rejection sampling, i.e. conditioning on validity).
- In `compositional` only the main object is a held-out pair; the second object is never one,
  in any split, so a compositional clip holds exactly one unseen pair.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .spec import (
    BACKGROUNDS,
    HEIGHT,
    HELD_OUT_PAIRS,
    MIN_GAP_PX,
    MOTION_VECTORS,
    MOTIONS,
    NUM_FRAMES,
    SIZES,
    STEP_PX,
    TRAIN_PAIRS,
    WIDTH,
    ObjectSpec,
    Scene,
)

SPLITS: tuple[str, ...] = ("train", "val", "test", "compositional")
SPLIT_SEED_OFFSETS: dict[str, int] = {
    "train": 0,
    "val": 10_000_000,
    "test": 20_000_000,
    "compositional": 30_000_000,
}
SPLIT_SIZE_LIMIT = 10_000_000  # seeds per split; index must stay below this
_MAX_TRIES = 10_000


def clip_seed(split: str, index: int) -> int:
    """Seed of the `index`-th clip of `split` (0 <= index < SPLIT_SIZE_LIMIT)."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not 0 <= index < SPLIT_SIZE_LIMIT:
        raise ValueError(f"index {index} outside [0, {SPLIT_SIZE_LIMIT})")
    return SPLIT_SEED_OFFSETS[split] + index


def split_of_seed(seed: int) -> str:
    """Inverse of `clip_seed` on the split: which split's range holds `seed`."""
    for split, offset in SPLIT_SEED_OFFSETS.items():
        if offset <= seed < offset + SPLIT_SIZE_LIMIT:
            return split
    raise ValueError(f"seed {seed} is in no split's range")


def start_range(side: int, motion: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Inclusive ranges ((x_lo, x_hi), (y_lo, y_hi)) of frame-0 corners keeping the box inside."""
    travel = STEP_PX * (NUM_FRAMES - 1)
    dx, dy = MOTION_VECTORS[motion]
    x_range = (max(0, -dx * travel), min(WIDTH - side, WIDTH - side - dx * travel))
    y_range = (max(0, -dy * travel), min(HEIGHT - side, HEIGHT - side - dy * travel))
    return x_range, y_range


def box_gap(a: ObjectSpec, b: ObjectSpec) -> int:
    """Frame-0 separation of two boxes: the widest empty band between them along x or y, px.

    Negative when the boxes overlap.
    """
    gap_x = max(b.x0 - (a.x0 + a.side), a.x0 - (b.x0 + b.side))
    gap_y = max(b.y0 - (a.y0 + a.side), a.y0 - (b.y0 + b.side))
    return max(gap_x, gap_y)


def _second_pairs(main_color: str, main_shape: str) -> list[tuple[str, str]]:
    return [(c, s) for c, s in TRAIN_PAIRS if c != main_color and s != main_shape]


def _room_for_second(main: ObjectSpec) -> float:
    """The probability that one draw of a second object's size, motion and corner clears ``main`` by MIN_GAP_PX
    (the rejection sampler's acceptance rate; the pair does not matter), computed exactly over all draws."""
    total = 0.0
    for side in SIZES.values():
        for motion in MOTIONS:
            (x_lo, x_hi), (y_lo, y_hi) = start_range(side, motion)
            x0 = np.arange(x_lo, x_hi + 1)
            y0 = np.arange(y_lo, y_hi + 1)
            gap_x = np.maximum(x0 - (main.x0 + main.side), main.x0 - (x0 + side))
            gap_y = np.maximum(y0 - (main.y0 + main.side), main.y0 - (y0 + side))
            clear = np.maximum(gap_x[None, :], gap_y[:, None]) >= MIN_GAP_PX
            total += clear.mean() / (len(SIZES) * len(MOTIONS))
    return float(total)


def main_posterior(scene: Scene) -> float:
    """P(the scene's main object is the one drawn as main | its two objects, unordered), under `sample_scene`.

    The order is not symmetric: only the second object is redrawn until it fits, so
    P(main=a, second=b) = p(a) q_a(b) / R(a), where q_a draws among the `|pairs(a)|` pairs allowed beside a and
    R(a) is the chance that a draw fits beside a (`_room_for_second`). Every other factor is common to both
    orders, so the odds of the scene's order against the swap are |pairs(b)| R(b) / (|pairs(a)| R(a)): an object
    that leaves little room (large, central) is the likelier main one. 1.0 for one object, and where the
    swapped scene cannot be drawn (a held-out pair is never a second object)."""
    if scene.second is None:
        return 1.0
    a, b = scene.main, scene.second
    if (a.color, a.shape) not in TRAIN_PAIRS:
        return 1.0
    weight_a = len(_second_pairs(a.color, a.shape)) * _room_for_second(a)
    weight_b = len(_second_pairs(b.color, b.shape)) * _room_for_second(b)
    return weight_b / (weight_a + weight_b)


def _sample_object(rng: np.random.Generator, pairs: list[tuple[str, str]]) -> ObjectSpec:
    color, shape = pairs[int(rng.integers(len(pairs)))]
    size = list(SIZES)[int(rng.integers(len(SIZES)))]
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    (x_lo, x_hi), (y_lo, y_hi) = start_range(SIZES[size], motion)
    x0 = int(rng.integers(x_lo, x_hi + 1))
    y0 = int(rng.integers(y_lo, y_hi + 1))
    return ObjectSpec(color=color, shape=shape, size=size, motion=motion, x0=x0, y0=y0)


def sample_scene(rng: np.random.Generator, split: str) -> Scene:
    """Draw one scene of `split` ("train", "val", "test" or "compositional") from `rng`."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    main_pairs = list(HELD_OUT_PAIRS) if split == "compositional" else TRAIN_PAIRS
    main = _sample_object(rng, main_pairs)
    if rng.random() >= 0.5:
        return Scene(background=background, main=main, second=None)
    second_pairs = _second_pairs(main.color, main.shape)
    for _ in range(_MAX_TRIES):
        second = _sample_object(rng, second_pairs)
        if box_gap(main, second) >= MIN_GAP_PX:
            return Scene(background=background, main=main, second=second)
    raise RuntimeError("could not place a second object")  # unreachable in practice: room always exists


def scene_for_seed(seed: int, split: str) -> Scene:
    """The scene of clip `seed`; deterministic for a given numpy version."""
    return sample_scene(np.random.default_rng(seed), split)


def iter_split(split: str, n: int, start: int = 0) -> Iterator[tuple[int, Scene]]:
    """Yield (seed, scene) for clips start, ..., start + n - 1 of `split`."""
    for index in range(start, start + n):
        seed = clip_seed(split, index)
        yield seed, scene_for_seed(seed, split)
