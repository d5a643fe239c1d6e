"""What the pipeline returns: frames and/or text, and optionally the whole denoising trajectory."""

from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers.utils import BaseOutput

from .flows import VideoFlow


@dataclass
class TrajectoryStep:
    """The state right after denoising step ``step`` (1-based) of ``num_steps``.

    Video fields are ``None`` when the video was clean input (captioning); text fields are ``None`` when
    the text was clean input (text-to-video). Latents are [C, F, h, w] float16 on the CPU.
    """

    step: int
    num_steps: int
    video_sigma: float | None = None
    video_latents: torch.Tensor | None = None  # x after the step
    video_x0: torch.Tensor | None = None  # the clean latents predicted at this step
    video_delta: float | None = None  # RMS change of x over the step
    text_sigma: float | None = None
    text_ids: list[int] | None = None  # the text state after the step
    text_pred_ids: list[int] | None = None  # the clean text predicted at this step
    text_confidence: list[float] | None = None  # [L] model confidence in each predicted token
    text_tokens: list[str] | None = None  # display strings of the state ("<mask>" for masked positions)
    text: str | None = None  # the state as a sentence (masked positions shown as "_")
    changed: list[bool] | None = None  # [L] positions whose id changed over this step

    @property
    def num_changed(self) -> int:
        return int(sum(self.changed)) if self.changed else 0

    @property
    def mean_confidence(self) -> float | None:
        return float(np.mean(self.text_confidence)) if self.text_confidence else None


@dataclass
class UniViGUPipelineOutput(BaseOutput):
    """``frames`` uint8 [F, H, W, 3]; ``text`` the caption; ``notes`` what was done to the inputs.

    Captioning a list of clips gives a list of captions and, per clip, a list of notes."""

    frames: np.ndarray | None = None
    text: str | list[str] | None = None
    trajectory: list[TrajectoryStep] | None = None
    notes: list[str] | list[list[str]] = field(default_factory=list)


def record_video_step(record: TrajectoryStep, latents, new_latents, velocity, sigmas: list[float], keep: bool) -> None:
    """Fill ``record``'s video fields for a step from ``sigmas[0]`` to ``sigmas[1]`` (the latents if ``keep``)."""
    sigma, record.video_sigma = sigmas
    record.video_delta = float((new_latents.float() - latents.float()).pow(2).mean().sqrt())
    if keep:
        x0 = VideoFlow.predict_x0(latents, velocity, torch.tensor([sigma], device=latents.device))
        record.video_latents = new_latents[0].detach().to("cpu", torch.float16)
        record.video_x0 = x0[0].detach().to("cpu", torch.float16)
