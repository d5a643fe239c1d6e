"""The clip sizes a pipeline makes: the grid its VAE and patches impose, and the size it was trained on.

Read from a loaded pipeline (:meth:`ClipSizes.of`) or from a pipeline folder's configs alone (:meth:`ClipSizes.read`),
so the command line can refuse a size, or warn about it, before any weights load.
"""

import json
import os
from dataclasses import dataclass


def _json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


@dataclass(frozen=True)
class ClipSizes:
    trained: tuple[int, int, int]  # (frames, height, width): the pipeline's defaults, the size it was trained on
    frames_step: int  # frames are 1 + frames_step * k (the VAE's temporal factor)
    size_step: int  # height and width are multiples of this (the VAE's spatial factor times the patch size)

    @classmethod
    def of(cls, pipe) -> "ClipSizes":
        """A loaded :class:`~univigu.UniViGUPipeline`'s sizes."""
        c = pipe.config
        return cls(
            (int(c.default_num_frames), int(c.default_height), int(c.default_width)),
            int(pipe.vae_scale_factor_temporal),
            int(pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]),
        )

    @classmethod
    def read(cls, folder: str) -> "ClipSizes | None":
        """A pipeline folder's sizes from its config files alone (no weights); None when they are missing or not a
        UniViGU pipeline's, for :func:`univigu.loading.load_pipeline` to say why."""
        try:
            index, vae, transformer = (
                _json(os.path.join(folder, name))
                for name in ("model_index.json", "vae/config.json", "transformer/config.json")
            )
            return cls(
                (int(index["default_num_frames"]), int(index["default_height"]), int(index["default_width"])),
                int(vae["scale_factor_temporal"]),
                int(vae["scale_factor_spatial"] * transformer["patch_size"][1]),
            )
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def check(
        self, num_frames: int | None, height: int | None, width: int | None, names=("num_frames", "height", "width")
    ) -> tuple[int, int, int]:
        """Fill the trained size for a None and validate against the grid (the rule of
        :meth:`UniViGUPipeline.check_size`); raises ``ValueError`` naming the value by ``names`` (the arguments or
        flags a caller's user typed) with the nearest valid one."""
        given = (num_frames, height, width)
        f, h, w = (value if value is not None else default for value, default in zip(given, self.trained))
        t, s = self.frames_step, self.size_step
        if f < 1 or (f - 1) % t:
            raise ValueError(f"{names[0]} must be 1 + {t}k (e.g. {max(1, (f - 1) // t * t + 1)}), got {f}")
        for name, value in ((names[1], h), (names[2], w)):
            if value < s or value % s:
                nearest = max(s, value // s * s)
                raise ValueError(f"{name} must be a positive multiple of {s} (e.g. {nearest}), got {value}")
        return f, h, w

    def larger_than_trained(self, num_frames: int, height: int, width: int) -> bool:
        """Whether a clip exceeds the trained size in any dimension: the model has not learned such clips."""
        return any(value > most for value, most in zip((num_frames, height, width), self.trained))

    def describe(self, size: tuple[int, int, int] | None = None) -> str:
        """``size`` (default: the trained size) as a person reads it: '17 frames at 64x64' (width x height)."""
        f, h, w = size or self.trained
        return f"{f} frames at {w}x{h}"
