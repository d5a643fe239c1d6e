"""Read a clip back into ShapesWorld attributes (the text-to-video scorer's eyes).

Pipeline, per the spec's Scores section:
1. every pixel -> nearest palette colour (3 backgrounds + 6 object colours);
2. background = most frequent colour over the whole clip;
3. objects = per-colour masks of the object colours (the two objects never share a colour, so a
   colour is an object). Specks are removed by a one-step opening (keep the pixels of solid
   2 x 2 blocks and their 4-neighbours: every pixel of a rendered shape survives, even a
   triangle's base corners, while isolated pixels and thin lines of noise do not). A colour only
   counts as an object if it has a solid core (pixels whose 4 neighbours share its colour) of
   >= MIN_CORE_PX pixels in >= MIN_CORE_FRAMES frames, so a ring of mis-coloured edge pixels
   never becomes an object. At most two objects are kept (the colours with most pixels);
4. per object, from its "clean" frames (visible, and no pixel of the other object within one
   pixel of its bounding box, so nothing can occlude it there; frame 0 is always clean in a
   rendered clip, whose frame-0 boxes are >= 2 px apart):
   - shape from the median fill ratio of the mask's bounding box (circle ~0.78, square 1.0,
     triangle ~0.53), size from the median box side (the larger of width and height, nearest
     of 12 / 20 px);
   - motion from a least-squares line through the centroids: |displacement over the 16 frame
     steps| < STILL_MAX_PX -> "stays still", else the dominant axis and its sign;
   - cell from the frame-0 box centre, taken as the line's centroid at t = 0 plus the shape's
     centroid-to-box-centre offset (a triangle's centroid sits below its box centre). Using
     every clean frame keeps one stray pixel from moving the centre across a cell boundary.

Main vs second object: the main object is drawn on top, so where the two masks touch only the
second object loses pixels. Each object's deficit (its largest pixel count minus its count,
summed over the frames where they touch) names the one on top when one deficit clearly exceeds
the other (by a factor 2 and MIN_OCCLUSION_PX, so noise does not decide): `order_known`. When
the objects never overlap, a clip carries no information on which one is the main object; then
`order_known` is False, the objects are listed largest first, and the scorer assigns them to
the caption's objects in the way that matches best (see score.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .render import shape_mask
from .spec import BACKGROUNDS, COLORS, NUM_FRAMES, SIZES, cell_of_point

PALETTE_NAMES: list[str] = [*BACKGROUNDS, *COLORS]
PALETTE = np.array([*BACKGROUNDS.values(), *COLORS.values()], dtype=np.int32)  # [9, 3]
MIN_CORE_PX = 12
MIN_CORE_FRAMES = 3
MIN_OCCLUSION_PX = 6
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
    """A clip's reading: background name and up to two objects (main first when order_known).

    order_known is True for zero or one object, and for two objects when occlusion showed which
    one is on top; False when two objects never overlapped (their order is then largest first).
    """

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
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2, and |p|^2 does not change the argmin; every term is an
    # integer below 2^24, so float32 computes it exactly (ties go to the lower palette index)
    pixels = frames.reshape(-1, 3).astype(np.float32)  # [N, 3]
    palette = PALETTE.astype(np.float32)  # [9, 3]
    scores = (palette**2).sum(-1) - 2 * pixels @ palette.T  # [N, 9]
    return np.argmin(scores, axis=-1).reshape(frames.shape[:-1])


def _neighbour_count(mask: np.ndarray) -> np.ndarray:
    """Number of 4-neighbours inside `mask` [F, H, W] (outside the frame counts as outside)."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]


def _dilate(mask: np.ndarray) -> np.ndarray:
    return mask | (_neighbour_count(mask) > 0)


def despeckle(mask: np.ndarray) -> np.ndarray:
    """Keep pixels of solid 2 x 2 blocks and their 4-neighbours: bool [F, H, W] -> same shape."""
    blocks = mask[:, :-1, :-1] & mask[:, 1:, :-1] & mask[:, :-1, 1:] & mask[:, 1:, 1:]  # [F, H-1, W-1]
    solid = np.zeros_like(mask)
    for dy in (0, 1):
        for dx in (0, 1):
            solid[:, dy : dy + blocks.shape[1], dx : dx + blocks.shape[2]] |= blocks
    return mask & _dilate(solid)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x_min, x_max, y_min, y_max), inclusive, of a non-empty 2-D mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


@cache
def _centroid_to_box_centre(shape: str, side: int) -> tuple[float, float]:
    """(dx, dy) from a rendered shape's pixel centroid to its box centre."""
    ys, xs = np.nonzero(shape_mask(shape, side))
    return side / 2 - float((xs + 0.5).mean()), side / 2 - float((ys + 0.5).mean())


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
    """Box centre from a single 2-D mask (a triangle's mask lacks its apex row: anchor on the base)."""
    x0, x1, y0, y1 = _bbox(mask)
    if shape == "triangle":
        return (x0 + x1 + 1) / 2, y1 + 1 - (x1 - x0 + 1) / 2
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

    # 1. shape and size from the bounding boxes
    fills, sides = [], []
    for t in frames:
        x0, x1, y0, y1 = _bbox(mask[t])
        w, h = x1 - x0 + 1, y1 - y0 + 1
        fills.append(counts[t] / (w * h))
        sides.append(max(w, h))
    fill, side = float(np.median(fills)), float(np.median(sides))
    shape = _classify_shape(fill)
    size = min(SIZES, key=lambda name: abs(SIZES[name] - side))

    # 2. motion: a line through the centroids (clean frames only: occlusion biases a centroid)
    fit_frames = clean if len(clean) >= 2 else visible
    if len(fit_frames) >= 2:
        ts = np.array(fit_frames, dtype=float)
        centroids = np.array([np.argwhere(mask[t]).mean(axis=0) + 0.5 for t in fit_frames])  # [T, (y, x)]
        (vy, vx), (cy0, cx0) = np.polyfit(ts, centroids, 1)
        dx, dy = float(vx * (NUM_FRAMES - 1)), float(vy * (NUM_FRAMES - 1))
    else:
        dx = dy = 0.0

    # 3. cell of the frame-0 box centre
    if len(clean) >= 2:
        off_x, off_y = _centroid_to_box_centre(shape, SIZES[size])
        centre = (float(cx0) + off_x, float(cy0) + off_y)
    else:
        centre = _box_centre(mask[frames[0]], shape)
    return DetectedObject(
        color=color,
        shape=shape,
        size=size,
        cell=cell_of_point(*centre),
        motion=_classify_motion(dx, dy),
        fill_ratio=fill,
        side_px=side,
        displacement=(dx, dy),
        max_pixels=int(counts.max()),
    )


def _first_is_on_top(a: np.ndarray, b: np.ndarray) -> bool | None:
    """True if mask a [F, H, W] occludes b, False if b occludes a, None without clear evidence."""
    touching = (_dilate(a) & b).any(axis=(1, 2))
    count_a, count_b = a.sum(axis=(1, 2)), b.sum(axis=(1, 2))
    deficit_a = int((count_a.max() - count_a)[touching].sum())
    deficit_b = int((count_b.max() - count_b)[touching].sum())
    if deficit_b >= 2 * deficit_a + MIN_OCCLUSION_PX:
        return True
    if deficit_a >= 2 * deficit_b + MIN_OCCLUSION_PX:
        return False
    return None


def detect(frames: np.ndarray) -> Detection:
    """Read a clip, uint8 [F, 64, 64, 3] RGB, into a Detection (see the module docstring)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [F, H, W, 3], got {frames.shape}")
    index = palette_indices(frames)
    totals = np.bincount(index.ravel(), minlength=len(PALETTE))
    background = PALETTE_NAMES[int(totals.argmax())]

    masks: dict[str, np.ndarray] = {}
    for color in COLORS:
        if color == background or totals[PALETTE_NAMES.index(color)] < MIN_CORE_PX * MIN_CORE_FRAMES:
            continue  # cannot pass the core test below; skipping it saves most of the time
        mask = despeckle(index == PALETTE_NAMES.index(color))
        core_counts = (mask & (_neighbour_count(mask) == 4)).sum(axis=(1, 2))
        if (core_counts >= MIN_CORE_PX).sum() >= MIN_CORE_FRAMES:
            masks[color] = mask
    names = sorted(masks, key=lambda c: int(masks[c].sum()), reverse=True)[:2]

    if not names:
        return Detection(background, (), True)
    if len(names) == 1:
        return Detection(background, (_read_object(names[0], masks[names[0]], None),), True)
    a, b = names
    on_top = _first_is_on_top(masks[a], masks[b])
    if on_top is False:
        a, b = b, a
    objects = (_read_object(a, masks[a], masks[b]), _read_object(b, masks[b], masks[a]))
    return Detection(background, objects, on_top is not None)
