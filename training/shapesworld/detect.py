"""Read a clip back into ShapesWorld attributes (the text-to-video scorer's eyes).

Pipeline, per the spec's Scores section:
1. every pixel -> nearest palette colour (3 backgrounds + 6 object colours);
2. background = most frequent colour over the whole clip;
3. objects = per-colour masks of the object colours (colours differ between the two objects, so
   a colour is an object). Isolated specks (no same-colour 4-neighbour) are removed first; every
   pixel of a rendered shape has such a neighbour. A colour only counts as an object if it
   has a solid core (pixels whose 4 neighbours share its colour) of >= MIN_CORE_PX pixels in
   >= MIN_CORE_FRAMES frames, so a ring of mis-coloured edge pixels never becomes an object;
4. per object, using its "clean" frames (visible, and no pixel of the other object within one
   pixel of its bounding box, so it cannot be occluded there; frame 0 is always clean in a
   rendered clip because the frame-0 boxes are >= 2 px apart):
   shape from the median fill ratio of the mask's bounding box (circle ~0.78, square 1.0,
   triangle ~0.53), size from the median box side (nearest of 12 / 20), motion from a
   least-squares fit of the centroid path (|displacement| < STILL_MAX_PX -> "stays still",
   else the dominant axis), cell from the box centre in frame 0.

Main vs second object: the main object is drawn on top, so wherever the two masks touch, only
the second object can lose pixels. Summing each object's pixel deficit (its largest pixel count
minus its count) over the frames where they touch names the object on top: `order_known`. When
the objects never overlap, a clip carries no information about which one is the main object;
then `order_known` is False, objects are listed largest first, and the scorer picks the
assignment to the caption's objects that matches best (see score.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import BACKGROUNDS, COLORS, NUM_FRAMES, SIZES, cell_of_point

PALETTE_NAMES: list[str] = [*BACKGROUNDS, *COLORS]
PALETTE = np.array([*BACKGROUNDS.values(), *COLORS.values()], dtype=np.int32)  # [9, 3]
MIN_CORE_PX = 12
MIN_CORE_FRAMES = 3
STILL_MAX_PX = 8.0  # real motions travel 0 or 32 px; a quarter of the travel separates them
# fill-ratio thresholds halfway between the rendered values (triangle 0.53-0.55, circle 0.78-0.79)
TRIANGLE_MAX_FILL = 0.66
CIRCLE_MAX_FILL = 0.89


@dataclass(frozen=True)
class DetectedObject:
    """One object read from a clip.

    Attributes:
        color, shape, size, cell, motion: vocabulary phrases, as in a caption.
        fill_ratio: median mask area / bounding-box area over clean frames.
        side_px: median bounding-box side (the larger of width and height), px.
        displacement: fitted centroid displacement (dx, dy) from the first to the last frame, px.
        max_pixels: largest pixel count over frames.
    """

    color: str
    shape: str
    size: str
    cell: str
    motion: str
    fill_ratio: float
    side_px: float
    displacement: tuple[float, float]
    max_pixels: int


@dataclass(frozen=True)
class Detection:
    """A clip's reading: background name and up to two objects (main first when order_known)."""

    background: str
    objects: tuple[DetectedObject, ...]
    order_known: bool

    @property
    def main(self) -> DetectedObject | None:
        """The first object (the main object when `order_known`)."""
        return self.objects[0] if self.objects else None

    @property
    def second(self) -> DetectedObject | None:
        """The other object, if any."""
        return self.objects[1] if len(self.objects) > 1 else None


def palette_indices(frames: np.ndarray) -> np.ndarray:
    """Nearest palette colour per pixel: uint8 [F, H, W, 3] -> int [F, H, W] into PALETTE_NAMES."""
    # distances only for the distinct colours: a rendered clip has three, a generated one more
    packed = (frames[..., 0].astype(np.int32) << 16) | (frames[..., 1].astype(np.int32) << 8) | frames[..., 2]
    unique, inverse = np.unique(packed, return_inverse=True)
    rgb = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=-1)  # [U, 3]
    nearest = np.argmin(((rgb[:, None, :] - PALETTE) ** 2).sum(-1), axis=-1)  # [U]
    return nearest[inverse.reshape(packed.shape)]


def _neighbour_count(mask: np.ndarray) -> np.ndarray:
    """Number of 4-neighbours inside `mask` [F, H, W] (outside the frame counts as outside)."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]


def _dilate(mask: np.ndarray) -> np.ndarray:
    return mask | (_neighbour_count(mask) > 0)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x_min, x_max, y_min, y_max), inclusive, of a non-empty 2-D mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


def _classify_shape(fill: float) -> str:
    if fill < TRIANGLE_MAX_FILL:
        return "triangle"
    return "circle" if fill < CIRCLE_MAX_FILL else "square"


def _classify_motion(dx: float, dy: float) -> str:
    if max(abs(dx), abs(dy)) < STILL_MAX_PX:
        return "stays still"
    if abs(dx) >= abs(dy):
        return "moves right" if dx > 0 else "moves left"
    return "moves down" if dy > 0 else "moves up"


def _box_centre(mask: np.ndarray, shape: str) -> tuple[float, float]:
    x0, x1, y0, y1 = _bbox(mask)
    if shape == "triangle":
        # a triangle's apex row holds no pixel centre, so its mask is one row short at the top:
        # anchor on the base and use the width (= the box side) to find the box centre
        width = x1 - x0 + 1
        return (x0 + x1 + 1) / 2, y1 + 1 - width / 2
    return (x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2


def _read_object(color: str, mask: np.ndarray, other: np.ndarray | None) -> DetectedObject:
    """Attributes of one object from its mask [F, H, W] and the other object's mask (or None)."""
    counts = mask.sum(axis=(1, 2))
    visible = [t for t in range(len(mask)) if counts[t] > 0]
    clean = []
    for t in visible:
        x0, x1, y0, y1 = _bbox(mask[t])
        if other is None or not other[t, max(y0 - 1, 0) : y1 + 2, max(x0 - 1, 0) : x1 + 2].any():
            clean.append(t)
    frames = clean if clean else visible

    fills, sides = [], []
    for t in frames:
        x0, x1, y0, y1 = _bbox(mask[t])
        w, h = x1 - x0 + 1, y1 - y0 + 1
        fills.append(counts[t] / (w * h))
        sides.append(max(w, h))
    fill, side = float(np.median(fills)), float(np.median(sides))
    shape = _classify_shape(fill)
    size = min(SIZES, key=lambda name: abs(SIZES[name] - side))

    # a line through the centroids of at least two clean frames; occluded frames would bias it
    fit_frames = clean if len(clean) >= 2 else visible
    if len(fit_frames) >= 2:
        ts = np.array(fit_frames, dtype=float)
        ys, xs = zip(*(np.argwhere(mask[t]).mean(axis=0) for t in fit_frames), strict=True)
        slope_x = np.polyfit(ts, np.array(xs), 1)[0]
        slope_y = np.polyfit(ts, np.array(ys), 1)[0]
        dx, dy = float(slope_x * (NUM_FRAMES - 1)), float(slope_y * (NUM_FRAMES - 1))
    else:
        dx = dy = 0.0

    cell = cell_of_point(*_box_centre(mask[visible[0]], shape))
    return DetectedObject(
        color=color,
        shape=shape,
        size=size,
        cell=cell,
        motion=_classify_motion(dx, dy),
        fill_ratio=fill,
        side_px=side,
        displacement=(dx, dy),
        max_pixels=int(counts.max()),
    )


def _first_is_on_top(a: np.ndarray, b: np.ndarray) -> bool | None:
    """True if mask a [F, H, W] occludes b, False if b occludes a, None if there is no evidence."""
    touching = (_dilate(a) & b).any(axis=(1, 2))
    count_a, count_b = a.sum(axis=(1, 2)), b.sum(axis=(1, 2))
    deficit_a = int((count_a.max() - count_a)[touching].sum())
    deficit_b = int((count_b.max() - count_b)[touching].sum())
    if deficit_a == deficit_b:
        return None
    return deficit_b > deficit_a


def detect(frames: np.ndarray) -> Detection:
    """Read a clip, uint8 [F, 64, 64, 3], into a Detection (see the module docstring)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [F, H, W, 3], got {frames.shape}")
    index = palette_indices(frames)
    background = PALETTE_NAMES[int(np.bincount(index.ravel(), minlength=len(PALETTE)).argmax())]

    masks: dict[str, np.ndarray] = {}
    for color in COLORS:
        if color == background:
            continue
        mask = index == PALETTE_NAMES.index(color)
        mask &= _neighbour_count(mask) >= 1  # drop isolated specks (>= 2 would eat triangle corners)
        core_counts = (mask & (_neighbour_count(mask) == 4)).sum(axis=(1, 2))
        if (core_counts >= MIN_CORE_PX).sum() >= MIN_CORE_FRAMES:
            masks[color] = mask
    # at most two objects: keep the two colours with the most pixels
    names = sorted(masks, key=lambda c: int(masks[c].sum()), reverse=True)[:2]

    if len(names) == 1:
        return Detection(background, (_read_object(names[0], masks[names[0]], None),), True)
    if not names:
        return Detection(background, (), True)
    a, b = names
    on_top = _first_is_on_top(masks[a], masks[b])
    if on_top is False:
        a, b = b, a
    objects = (_read_object(a, masks[a], masks[b]), _read_object(b, masks[b], masks[a]))
    return Detection(background, objects, on_top is not None)
