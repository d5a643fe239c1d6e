"""ShapesWorld v1 constants and scene dataclasses (the world is described in ``WORLD.md`` beside this file).

Coordinates: x grows to the right, y grows downwards, both in pixels; pixel (x, y) covers the
square [x, x+1) x [y, y+1), so its centre is (x + 0.5, y + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NUM_FRAMES = 17  # 1 + 4k frames, as Wan's VAE wants
HEIGHT = 64
WIDTH = 64
FPS = 8
STEP_PX = 2  # displacement per frame of a moving object

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
    "white": (235, 235, 235),
}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 70),
    "blue": (50, 90, 230),
    "yellow": (235, 210, 50),
    "purple": (150, 70, 200),
    "cyan": (40, 200, 210),
}
SHAPES: list[str] = ["circle", "square", "triangle"]
SIZES: dict[str, int] = {"small": 12, "large": 20}  # side of the shape's bounding box, px
MOTIONS: list[str] = ["moves left", "moves right", "moves up", "moves down", "stays still"]
MOTION_VECTORS: dict[str, tuple[int, int]] = {
    "moves left": (-1, 0),
    "moves right": (1, 0),
    "moves up": (0, -1),
    "moves down": (0, 1),
    "stays still": (0, 0),
}
CELLS: list[str] = [
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
]  # fmt: skip
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("purple", "triangle"),
    ("cyan", "circle"),
    ("yellow", "square"),
)
ALL_PAIRS: list[tuple[str, str]] = [(c, s) for c in COLORS for s in SHAPES]
TRAIN_PAIRS: list[tuple[str, str]] = [p for p in ALL_PAIRS if p not in HELD_OUT_PAIRS]
MIN_GAP_PX = 2  # frame-0 bounding boxes of the two objects are at least this far apart


def cell_of_point(cx: float, cy: float) -> str:
    """Name of the 3 x 3 grid cell holding the point (cx, cy), in pixel coordinates.

    Cells are the half-open intervals [0, 64/3), [64/3, 128/3), [128/3, 64] on each axis. Box
    centres are integers (even sides, integer corners) and 64/3 is not a multiple of 1/2, so no
    centre can ever fall on a boundary: the half-open convention never actually decides a case.
    """
    col = min(max(math.floor(3 * cx / WIDTH), 0), 2)
    row = min(max(math.floor(3 * cy / HEIGHT), 0), 2)
    return CELLS[3 * row + col]


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene.

    Attributes:
        color: key of COLORS.
        shape: one of SHAPES.
        size: key of SIZES ("small" or "large").
        motion: one of MOTIONS.
        x0, y0: top-left corner of the object's bounding box in frame 0, px.
    """

    color: str
    shape: str
    size: str
    motion: str
    x0: int
    y0: int

    @property
    def side(self) -> int:
        """Side of the bounding box in pixels."""
        return SIZES[self.size]

    def position(self, t: int) -> tuple[int, int]:
        """Top-left corner (x, y) of the bounding box in frame t."""
        dx, dy = MOTION_VECTORS[self.motion]
        return self.x0 + dx * STEP_PX * t, self.y0 + dy * STEP_PX * t

    @property
    def cell(self) -> str:
        """Grid cell holding the centre of the frame-0 bounding box."""
        return cell_of_point(self.x0 + self.side / 2, self.y0 + self.side / 2)


@dataclass(frozen=True)
class Scene:
    """A whole clip: background colour name, the main object and an optional second object."""

    background: str
    main: ObjectSpec
    second: ObjectSpec | None = None
