"""What the pipeline returns: frames and/or text, the seed it used, and optionally the whole denoising trajectory."""

from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers.utils import BaseOutput

from .trajectory import TrajectoryStep


@dataclass
class UniViGUPipelineOutput(BaseOutput):
    """``frames``: the clips in ``output_type``'s form (``UniViGUPipeline.__call__``; the task methods give one
    uint8 clip [F, H, W, 3]); ``text``: the caption (a list for a batch); ``seed``: the seed the run's generator
    was made from (drawn at random when neither a seed nor a generator was given; ``None`` with a generator);
    ``notes``: what was done to the inputs (per clip for a batch)."""

    frames: np.ndarray | torch.Tensor | list | None = None
    text: str | list[str] | None = None
    trajectory: list[TrajectoryStep] | None = None
    notes: list[str] | list[list[str]] = field(default_factory=list)
    seed: int | None = None
