"""The clean clip's cached context for captioning: each block's video keys and values."""

from dataclasses import dataclass, field

import torch


@dataclass
class VideoKV:
    """One block's video keys and values [B, N_v, H, hd], as self-attention sees them (normalised, rotated)."""

    key: torch.Tensor | None = None
    value: torch.Tensor | None = None


@dataclass
class VideoContext:
    """The clean clip's context for captioning: every block's video keys and values.

    A full forward given a ``VideoContext`` records it; a forward with ``video_latents=None`` then runs only the
    text tokens, their queries attending to [cached video K/V; text K/V]. The video tokens attend to the text
    too, so the cache is exact for the text state it was recorded with and an approximation as the text moves:
    the pipeline re-records it every ``video_cache_interval`` steps (:meth:`UniViGUPipeline.sample`).
    """

    layers: list[VideoKV] = field(default_factory=list)
    dtype: torch.dtype | None = None  # the hidden states' dtype when it was recorded

    @property
    def filled(self) -> bool:
        return bool(self.layers) and self.layers[0].key is not None

    @property
    def num_video(self) -> int:
        return self.layers[0].key.shape[1]

    @property
    def batch(self) -> int:
        return self.layers[0].key.shape[0]
