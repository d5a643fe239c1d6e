"""The pipeline's three tasks as one-clip methods: thin wrappers over ``UniViGUPipeline.__call__``.

Each gives one uint8 clip [F, H, W, 3] (``text_to_video``, ``joint``) and/or its caption; ``__call__`` takes
batches and gives diffusers' output types.
"""

from collections.abc import Callable

import numpy as np
import torch

from .pipeline_output import UniViGUPipelineOutput
from .trajectory import TrajectoryStep

StepCallback = Callable[[TrajectoryStep], None]

# Captioning's default steps. The clip is held clean, so steps only pace the text: with the mask source the
# sampler reveals the surest tokens first, about one of the bundled model's 32 text positions per step at 40;
# fewer steps leave captions that do not parse, more score the same (training/shapesworld/EXPERIMENTS.md).
CAPTION_STEPS = 40

# Captioning's default video_cache_interval (UniViGUPipeline.sample): the clip's per-block keys and values are
# computed at step 0 and every k-th step after, the steps between run only the text tokens on them. The largest
# k whose captions stay within 1 point of k = 1 on every attribute (the README's "Captioning on a cached clip").
CAPTION_VIDEO_CACHE_INTERVAL = 20


class TaskMethodsMixin:
    """``text_to_video``, ``caption`` and ``joint`` of :class:`UniViGUPipeline`."""

    def _one_clip(self, out: UniViGUPipelineOutput) -> UniViGUPipelineOutput:
        out.frames = out.frames[0]
        return out

    def text_to_video(
        self,
        prompt: str,
        negative_prompt: str = "",
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
    ) -> UniViGUPipelineOutput:
        """Generate a clip from ``prompt``: video from noise, the prompt held clean in the text stream.

        Returns ``.frames`` uint8 [F, H, W, 3] (and ``.trajectory`` if asked)."""
        return self._one_clip(
            self(
                prompt,
                negative_prompt,
                num_frames=num_frames,
                height=height,
                width=width,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=generator,
                seed=seed,
                callback=callback,
                return_trajectory=return_trajectory,
                output_type="uint8",
            )
        )

    def caption(
        self,
        video: np.ndarray | list[np.ndarray],
        prompt: str | None = None,
        num_inference_steps: int = CAPTION_STEPS,
        text_temperature: float = 0.0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
        video_cache_interval: int = CAPTION_VIDEO_CACHE_INTERVAL,
    ) -> UniViGUPipelineOutput:
        """Describe ``video`` (uint8 [F, H, W, 3], any size: it is fitted to the model's and noted).

        The clip is held clean; the text stream is denoised from its source. ``prompt`` optionally
        conditions the caption (without one the prompt slot is empty, as in Stage 1's dropped prompts).
        ``video_cache_interval``: the clip's keys and values are computed every k steps and the steps between
        run only the text (:meth:`sample`; 1 is the full sequence every step).

        A list of clips is captioned as one batch (each row its own clip and cache): ``text`` is then a list of
        captions and ``notes`` a list per clip. Greedy captions from the mask source are the same as one by
        one; random draws (a temperature, a uniform source) come from one generator for the whole batch.
        """
        return self(
            prompt,
            video=video,
            num_inference_steps=num_inference_steps,
            text_temperature=text_temperature,
            video_cache_interval=video_cache_interval,
            generator=generator,
            seed=seed,
            callback=callback,
            return_trajectory=return_trajectory,
        )

    def joint(
        self,
        prompt: str,
        negative_prompt: str = "",
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        text_temperature: float = 0.0,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
    ) -> UniViGUPipelineOutput:
        """Generate a clip and its caption together from ``prompt``, both denoised step by step."""
        return self._one_clip(
            self(
                prompt,
                negative_prompt,
                generate_text=True,
                num_frames=num_frames,
                height=height,
                width=width,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                text_temperature=text_temperature,
                generator=generator,
                seed=seed,
                callback=callback,
                return_trajectory=return_trajectory,
                output_type="uint8",
            )
        )
