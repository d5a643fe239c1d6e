"""A run's defaults and range rules, each defined once.

The pipeline, the ``univigu`` command, the studio and evaluation all take their defaults from here and check a
value with the same function. A check names the field the way the caller's user typed it (``name="--steps"``
from the command line, ``"Steps"`` in the studio), so one rule gives every front end its own one-line message.
"""

import math
import numbers
import secrets

# Denoising steps for a generated clip (text-to-video, joint generation)
GENERATION_STEPS = 30

# Captioning's default steps. The clip is held clean, so steps only pace the text: with the mask source the
# sampler reveals the surest tokens first, about one of the bundled model's 32 text positions per step at 40;
# fewer steps leave captions that do not parse, more score the same (training/shapesworld/EXPERIMENTS.md).
CAPTION_STEPS = 40

MAX_STEPS = 1000
GUIDANCE_SCALE = 5.0
MAX_SEED = 2**32 - 1  # a seed not given is drawn from 0..MAX_SEED and reported

# Captioning's default video_cache_interval: the clip's per-block keys and values are computed at step 0 and every
# k-th step after, the steps between run only the text tokens on them. The largest k whose captions stay within
# 1 point of k = 1 on every attribute (the README's "Captioning on a cached clip").
CAPTION_VIDEO_CACHE_INTERVAL = 20


def default_steps(captioning: bool) -> int:
    """The denoising steps a run takes unless told otherwise."""
    return CAPTION_STEPS if captioning else GENERATION_STEPS


def check_steps(steps, name: str = "num_inference_steps") -> int:
    """``steps`` as an int in 1..MAX_STEPS, else a one-line ``ValueError`` naming ``name``."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"{name} must be a whole number from 1 to {MAX_STEPS}, got {steps!r}")
    return int(steps)


def check_video_cache_interval(k, name: str = "video_cache_interval") -> int:
    """``k`` as an int >= 1, else a one-line ``ValueError`` naming ``name`` and what the values mean."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(
            f"{name} must be an integer >= 1 (1: the full sequence every step; k: the clip every k "
            f"steps; >= the steps: the clip once), got {k!r}"
        )
    return int(k)


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in 0..MAX_SEED, else a one-line ``ValueError`` naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def check_guidance(scale, name: str = "guidance_scale") -> float:
    """``scale`` as a float of at least 1 (1 turns classifier-free guidance off), else a one-line ``ValueError``."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale < 1:
        raise ValueError(f"{name} must be a number of at least 1 (1 turns guidance off), got {scale!r}")
    return float(scale)


def draw_seed() -> int:
    """A seed for a run that was given none (reported with its output, so the run can be repeated)."""
    return secrets.randbelow(MAX_SEED + 1)
