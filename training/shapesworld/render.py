"""Rasterise a Scene into a clip.

A pixel belongs to a shape iff its centre (x + 0.5, y + 0.5) lies inside the shape (boundary
included; with integer box corners and even sides no pixel centre ever lies exactly on a
boundary, so the convention never decides a case).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .spec import BACKGROUNDS, COLORS, HEIGHT, NUM_FRAMES, SIZES, WIDTH, ObjectSpec, Scene


@cache
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean mask [side, side] of `shape` inside its side x side box (row = y, column = x).

    circle: diameter = side; square: side = side; triangle: pointing up, base = height = side,
    apex at the top centre of the box.
    """
    centres = np.arange(side) + 0.5
    y, x = np.meshgrid(centres, centres, indexing="ij")
    half = side / 2
    if shape == "circle":
        mask = (x - half) ** 2 + (y - half) ** 2 <= half**2
    elif shape == "square":
        mask = np.ones((side, side), dtype=bool)
    elif shape == "triangle":
        # half-width grows linearly from 0 at the apex (y = 0) to side/2 at the base (y = side)
        mask = np.abs(x - half) <= y / 2
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask.setflags(write=False)
    return mask


def draw_object(frame: np.ndarray, obj: ObjectSpec, t: int) -> None:
    """Paint `obj` as it is at frame t onto `frame` [H, W, 3] uint8, in place."""
    side = SIZES[obj.size]
    x, y = obj.position(t)
    region = frame[y : y + side, x : x + side]
    if region.shape[:2] != (side, side):
        raise ValueError(f"object leaves the frame at t={t}: {obj}")
    region[shape_mask(obj.shape, side)] = COLORS[obj.color]


def render(scene: Scene) -> np.ndarray:
    """Render `scene` to a clip, uint8 [NUM_FRAMES, HEIGHT, WIDTH, 3] (RGB)."""
    clip = np.empty((NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    clip[...] = BACKGROUNDS[scene.background]
    for t in range(NUM_FRAMES):
        if scene.second is not None:
            draw_object(clip[t], scene.second, t)
        draw_object(clip[t], scene.main, t)  # drawn last: the main object is on top
    return clip
