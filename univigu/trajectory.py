"""Recording a run's denoising step by step, as a ``callback_on_step_end`` of the pipeline.

The denoising loop only hands tensors to its callbacks; turning them into something to show (a sentence per step,
token strings, confidences, the clip predicted at each step) is this module's work, so it runs only when a caller
asks for a trajectory (the studio's scrubber, ``return_trajectory=True``) and never inside an unobserved loop.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .flows import DiscreteTextFlow, VideoFlow, text_flow_for


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
    held: list[bool] | None = None  # [L] positions held as given (a fill-in template's words); None: none held

    @property
    def num_changed(self) -> int:
        return int(sum(self.changed)) if self.changed else 0

    @property
    def mean_confidence(self) -> float | None:
        return float(np.mean(self.text_confidence)) if self.text_confidence else None


class TrajectoryRecorder:
    """A ``callback_on_step_end`` that records row 0 of a run as :class:`TrajectoryStep` s.

    ``keep_latents``: store each step's latents and predicted clean latents (float16, CPU); without, only the
    scalar and text fields. ``on_step``: called with each step's record as it is made (a live view); an exception
    it raises (``Cancelled``) stops the run.
    """

    # what it asks the pipeline for: the states after the step and before it, the step's predictions and its
    # (from, to) noise levels per stream (None for a stream held clean)
    tensor_inputs = [
        "latents",
        "prev_latents",
        "video_velocity",
        "video_sigmas",
        "text_state",
        "prev_text_state",
        "text_prediction",
        "text_sigmas",
        "text_held",
    ]

    def __init__(self, keep_latents: bool = True, on_step: Callable[[TrajectoryStep], None] | None = None):
        self.keep_latents, self.on_step = keep_latents, on_step
        self.steps: list[TrajectoryStep] = []
        self._flow = None  # the text flow of the pipeline it records, made at its first text step

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        record = TrajectoryStep(step=step + 1, num_steps=pipe.num_timesteps)
        if callback_kwargs["video_sigmas"] is not None:
            self._video(record, callback_kwargs, callback_kwargs["video_sigmas"])
        if callback_kwargs["text_sigmas"] is not None:
            self._text(pipe, record, callback_kwargs, callback_kwargs["text_sigmas"])
        self.steps.append(record)
        if self.on_step is not None:
            self.on_step(record)
        return {}

    def _video(self, record: TrajectoryStep, kw: dict, sigmas: tuple[float, float]) -> None:
        latents, new_latents, velocity = kw["prev_latents"][:1], kw["latents"][:1], kw["video_velocity"][:1]
        sigma, record.video_sigma = sigmas
        record.video_delta = float((new_latents.float() - latents.float()).pow(2).mean().sqrt())
        if self.keep_latents:
            x0 = VideoFlow.predict_x0(latents, velocity, torch.tensor([sigma], device=latents.device))
            record.video_latents = new_latents[0].detach().to("cpu", torch.float16)
            record.video_x0 = x0[0].detach().to("cpu", torch.float16)

    def _text(self, pipe, record: TrajectoryStep, kw: dict, sigmas: tuple[float, float]) -> None:
        state, new_state, prediction = kw["prev_text_state"][:1], kw["text_state"][:1], kw["text_prediction"][:1]
        flow = self._flow = self._flow or text_flow_for(pipe.transformer)
        sigma, record.text_sigma = sigmas
        if isinstance(flow, DiscreteTextFlow):
            confidence, pred = flow.posterior(prediction).max(-1)
            state_ids = new_state[0].tolist()
        else:
            x1_hat = flow.predict_x0(state, prediction, torch.tensor([sigma], device=state.device))
            pred, confidence = flow.decode(x1_hat)
            state_ids = flow.decode(new_state)[0][0].tolist()
        record.text_ids = state_ids
        if kw["text_held"] is not None:
            record.held = kw["text_held"][0].tolist()
        record.text_pred_ids = pred[0].tolist()
        record.text_confidence = confidence[0].float().tolist()
        record.text_tokens = pipe.token_strings(state_ids)
        record.text = pipe.decode_text(state_ids)
        previous = self.steps[-1].text_ids if self.steps else None
        record.changed = [True] * len(state_ids) if previous is None else [a != b for a, b in zip(previous, state_ids)]
