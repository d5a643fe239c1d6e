"""UniViGUPipeline: text-to-video, captioning and joint generation with one unified transformer.

All three tasks run the same loop over the same ``[video; text]`` forward; they differ only in which
stream starts from noise:

============  =====================  =========================
task          video                  text stream
============  =====================  =========================
text_to_video  noise -> clean          the prompt, clean
caption        the input clip, clean  source -> clean
joint          noise -> clean          source -> clean, in step
============  =====================  =========================

:meth:`UniViGUPipeline.__call__` runs the task its inputs name in diffusers' phases (check the inputs, encode the
prompt, prepare the streams, denoise, decode, offload); ``text_to_video`` / ``caption`` / ``joint`` wrap it for one
clip. The loop, :meth:`UniViGUPipeline.sample`, takes tensors for B rows at once (evaluation and validation call it
directly); what a caller records of each step is a ``callback_on_step_end`` (:mod:`univigu.trajectory`).
Classifier-free guidance (video only) appends B unconditional rows (empty prompt, empty text stream) to the same
forward. A text position holding the pad token is masked as a key, so text columns masked in every row are trimmed
before the loop: exact, and not computed.
Discrete text steps keep a text's form — words, one end token, pads (``DiscreteTextFlow.step``'s
``end_token_ids``), on a linear schedule.
"""

import secrets
import threading
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKLWan,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
)

from .caching import StepCacheMixin, apply_prompt_cache
from .flows import DiscreteTextFlow, text_flow_for, to_timestep
from .latents import denormalize, frames_to_pixels, frames_to_unit, normalize, pixels_to_frames
from .lora import UniViGULoraLoaderMixin
from .models import UniViGUTransformer
from .models.video_context import VideoContext
from .pipeline_output import UniViGUPipelineOutput
from .pipeline_tasks import CAPTION_STEPS, CAPTION_VIDEO_CACHE_INTERVAL, StepCallback, TaskMethodsMixin
from .pipeline_text import PromptError, TextStreamMixin, encode_texts, max_sequence_length
from .trajectory import TrajectoryRecorder, TrajectoryStep
from .video_io import fit_video

OUTPUT_TYPES = ("np", "pt", "pil", "latent", "uint8")


def check_video_cache_interval(k) -> None:
    """Raise ``ValueError`` naming the valid values unless ``k`` is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            "video_cache_interval must be an integer >= 1 (1: the full sequence every step; k: the clip every k "
            f"steps; >= the steps: the clip once), got {k!r}"
        )


def _timesteps(sigma: float, rows: int, device) -> torch.Tensor:
    return to_timestep(torch.full((rows,), sigma, device=device))


def _guided(velocity: torch.Tensor, batch: int, guidance_scale: float) -> torch.Tensor:
    """The first ``batch`` rows' velocity, guided by the unconditional rows after them if there are any."""
    if len(velocity) == batch:
        return velocity
    uncond = velocity[batch:]
    return uncond + guidance_scale * (velocity[:batch] - uncond)


class Cancelled(Exception):
    """Raised by a step callback to stop a run; the pipeline lets it through untouched."""


class UniViGUPipeline(TaskMethodsMixin, TextStreamMixin, StepCacheMixin, DiffusionPipeline, UniViGULoraLoaderMixin):
    r"""Uni-ViGU pipeline.

    Args:
        tokenizer: tokenizes prompts for the text encoder and ids for the text stream (one vocabulary).
        text_encoder: a UMT5 encoder giving the cross-attention condition.
        vae: ``AutoencoderKLWan``.
        transformer: :class:`UniViGUTransformer`.
        scheduler: a flow-matching scheduler for the video stream (``FlowMatchEulerDiscreteScheduler``).
        default_num_frames, default_height, default_width: the clip size the model was trained on.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = []
    # what callback_on_step_end may ask for: the states after the step, before it, and the step's predictions
    _callback_tensor_inputs = [*TrajectoryRecorder.tensor_inputs, "prompt_embeds"]

    def __init__(
        self,
        tokenizer,
        text_encoder,
        vae: AutoencoderKLWan,
        transformer: UniViGUTransformer,
        scheduler: FlowMatchEulerDiscreteScheduler,
        default_num_frames: int = 81,
        default_height: int = 480,
        default_width: int = 832,
        fps: int = 16,
    ):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        self.register_to_config(
            default_num_frames=default_num_frames, default_height=default_height, default_width=default_width, fps=fps
        )
        # The Wan VAE caches causal-conv state between calls: one clip at a time through it.
        self._vae_lock = threading.Lock()
        self.vae_scale_factor_temporal = vae.config.scale_factor_temporal
        self.vae_scale_factor_spatial = vae.config.scale_factor_spatial
        # Every task reuses the prompt's projections across steps (exact); hooked before any offloading hooks.
        if isinstance(transformer, UniViGUTransformer):
            apply_prompt_cache(transformer)
        self._step_cache_spec, self._step_cache, self._step_cache_on = "none", None, False
        self._current_timestep, self._interrupt, self._num_timesteps, self._step_sigmas = None, False, 0, (None, None)

    # ---------------------------------------------------------------------------------------------
    # Sizes and text
    @property
    def max_sequence_length(self) -> int:
        """Prompt tokens the text encoder sees (Wan: 512)."""
        return max_sequence_length(self.tokenizer)

    @property
    def max_text_len(self) -> int:
        return self.transformer.config.max_text_len

    def check_size(self, num_frames: int | None, height: int | None, width: int | None) -> tuple[int, int, int]:
        """Fill defaults and validate; raises ``ValueError`` with the nearest valid values."""
        num_frames = num_frames or self.config.default_num_frames
        height = height or self.config.default_height
        width = width or self.config.default_width
        t, s = self.vae_scale_factor_temporal, self.vae_scale_factor_spatial * self.transformer.config.patch_size[1]
        if num_frames < 1 or (num_frames - 1) % t:
            raise ValueError(
                f"num_frames must be 1 + {t}k (e.g. {max(1, (num_frames - 1) // t * t + 1)}), got {num_frames}"
            )
        for name, value in (("height", height), ("width", width)):
            if value < s or value % s:
                raise ValueError(f"{name} must be a positive multiple of {s}, got {value}")
        return num_frames, height, width

    # ---------------------------------------------------------------------------------------------
    # Latents
    @torch.no_grad()
    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames [F,H,W,3] -> normalised latents [1, C, f, h, w] (the transformer's space)."""
        x = frames_to_pixels(frames)[None].to(self.vae.device, self.vae.dtype)
        with self._vae_lock:
            return normalize(self.vae.encode(x).latent_dist.mode(), self.vae)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Normalised latents [1 or C-first] -> uint8 frames [F, H, W, 3]."""
        if latents.ndim == 4:
            latents = latents[None]
        latents = denormalize(latents.to(self.vae.device, self.vae.dtype), self.vae)
        with self._vae_lock:
            video = self.vae.decode(latents).sample  # [1, 3, F, H, W] in [-1, 1]
        return pixels_to_frames(video[0]).numpy()

    def _latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """Latent shape (C, f, h, w) of one clip of this size."""
        return (
            self.transformer.config.in_channels,
            (num_frames - 1) // self.vae_scale_factor_temporal + 1,
            height // self.vae_scale_factor_spatial,
            width // self.vae_scale_factor_spatial,
        )

    # ---------------------------------------------------------------------------------------------
    # The text stream
    def _text_inputs(self, state: torch.Tensor, use_cfg: bool) -> tuple[dict, torch.Tensor]:
        """Text kwargs and key mask [rows, L] for a state (ids [B,L] or latents [B,L,D]).

        With guidance B unconditional rows follow, each an empty text stream: all pad, or every key masked.
        """
        if self.transformer.config.text_formulation == "discrete":
            pad = self.transformer.config.pad_token_id
            ids = torch.cat([state, torch.full_like(state, pad)]) if use_cfg else state
            return {"text_tokens": ids}, self.transformer.text_key_mask(ids)
        latents = torch.cat([state, state]) if use_cfg else state
        mask = torch.arange(len(latents), device=state.device)[:, None] < len(state)
        return {"text_latents": latents}, mask.expand(-1, state.shape[1])

    @staticmethod
    def _trim(text_kwargs: dict, mask: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Drop trailing text columns masked in every row: they change nothing, so skip computing them.

        One column stays when every column is masked (an all-pad batch): the text stream cannot be empty."""
        used = mask.any(0).nonzero()
        keep = int(used.max()) + 1 if len(used) else 1
        return {k: v[:, :keep] for k, v in text_kwargs.items()}, mask[:, :keep]

    # ---------------------------------------------------------------------------------------------
    # The shared loop
    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set ``pipe.interrupt = True`` (or diffusers' ``pipe._interrupt``), e.g. in a step callback, to skip the
        run's remaining steps."""
        return self._interrupt

    @interrupt.setter
    def interrupt(self, value: bool) -> None:
        self._interrupt = bool(value)

    @property
    def current_timestep(self):
        return self._current_timestep

    @property
    def step_sigmas(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """The step being taken's (from, to) noise levels of the video and the text; ``None`` for a clean stream."""
        return self._step_sigmas

    def _prepare(self, generator, seed, steps) -> tuple[torch.Generator, int | None]:
        """The run's generator and the seed it was made from: ``seed``'s, or one drawn at random when neither a
        seed nor a generator is given (reported in the output; ``None`` with a caller's generator)."""
        if steps < 1 or steps > 1000:
            raise ValueError(f"num_inference_steps must be in 1..1000, got {steps}")
        if generator is not None:
            return generator, None
        seed = int(seed) if seed is not None else secrets.randbelow(2**32)
        return torch.Generator("cpu").manual_seed(seed), seed

    def _check_text_ids(self, text_ids: torch.Tensor) -> None:
        """Given text-stream ids must be the model's: checked once per run, outside the transformer's forward."""
        if self.transformer.config.text_formulation != "discrete" or not text_ids.numel():
            return
        classes = self.transformer.num_text_classes
        low, high = int(text_ids.min()), int(text_ids.max())
        if low < 0 or high >= classes:
            raise ValueError(f"text_ids must be ids in [0, {classes}), got {low}..{high}")

    def _check_tensor_inputs(self, names: list[str]) -> None:
        unknown = set(names) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs: {sorted(unknown)} not in {self._callback_tensor_inputs}"
            )

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        uncond: torch.Tensor | None = None,
        *,
        latent_shape: tuple[int, ...] | None = None,
        video_latents: torch.Tensor | None = None,
        text_ids: torch.Tensor | None = None,
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        text_temperature: float = 0.0,
        text_order: str = "auto",
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
        video_cache_interval: int = 1,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[TrajectoryStep] | None]:
        """The denoising loop for B rows; a stream given clean is held, the other is denoised.

        Args:
            cond: prompt embeddings [B, L_c, D] (:meth:`encode_prompt`).
            uncond: the unconditional (negative) prompt's embedding [1 or B, L_c, D]; needed for guidance.
            latent_shape: (C, f, h, w) of the clips to denoise from noise; or
            video_latents: clean normalised latents [B, C, f, h, w] (captioning).
            text_ids: clean text-stream ids [B, L] (:meth:`text_id_rows`); ``None`` denoises the text.
            text_order: which masked tokens a discrete text step reveals (``DiscreteTextFlow.step``):
                ``"confidence"``, ``"random"``, or ``"auto"`` (confidence for the mask source, else random).
            generator: draws, in order, all rows' video noise, their text source, then each step's random
                text jumps (none in confidence order when greedy).
            callback, return_trajectory: per-step :class:`TrajectoryStep` records of one row (B = 1), made by a
                :class:`TrajectoryRecorder` on the step's tensors; ``callback`` sees each as it is made.
            video_cache_interval: captioning (``video_latents`` given, text denoised): every k-th step runs the
                full sequence and records each block's video keys and values (:class:`VideoContext`); the steps
                between run only the text tokens on them (no video head). The video tokens attend to the text,
                so k > 1 approximates; 1 (the default) is the full sequence every step, k >= the steps computes
                the clip once.
            callback_on_step_end, callback_on_step_end_tensor_inputs: diffusers' step callback,
                ``callback(pipe, step, timestep, callback_kwargs) -> dict``, given the named tensors of
                ``_callback_tensor_inputs``; returning ``latents``, ``text_state`` or ``prompt_embeds`` replaces
                them. ``pipe.interrupt = True`` skips the remaining steps.

        Returns (latents [B, C, f, h, w], text ids [B, L] or ``None`` when given, trajectory or ``None``).
        """
        device, dtype = self._execution_device, self.transformer.dtype
        transformer, batch = self.transformer, len(cond)
        denoise_video, denoise_text = video_latents is None, text_ids is None
        use_cfg = denoise_video and guidance_scale > 1.0
        recorder = None
        if callback is not None or return_trajectory:
            if batch > 1:
                raise ValueError(f"step callbacks and trajectories follow one row; got a batch of {batch}")
            recorder = TrajectoryRecorder(keep_latents=return_trajectory, on_step=callback)
        # each step callback with the tensors it asks for
        callbacks = [(recorder, recorder.tensor_inputs)] if recorder is not None else []
        if callback_on_step_end is not None:
            names = callback_on_step_end_tensor_inputs or ["latents"]
            self._check_tensor_inputs(names)
            callbacks.append((callback_on_step_end, names))
        if use_cfg and uncond is None:
            raise ValueError("guidance_scale > 1 needs the unconditional embedding `uncond`")
        if denoise_video and latent_shape is None:
            raise ValueError("pass latent_shape to generate video, or video_latents to hold it clean")
        check_video_cache_interval(video_cache_interval)
        if video_cache_interval > 1 and (denoise_video or not denoise_text):
            raise ValueError("video_cache_interval > 1 applies to captioning: a clean clip and a text to denoise")
        if not denoise_text:
            self._check_text_ids(text_ids)
        flow = text_flow_for(transformer)
        discrete = isinstance(flow, DiscreteTextFlow)
        if text_order == "auto":
            text_order = "confidence" if discrete and flow.source == "mask" else "random"
        if text_order != "random" and not discrete:
            raise ValueError(f"text_order={text_order!r} applies to discrete text; this model's text is continuous")
        rows = 2 * batch if use_cfg else batch

        # 1. Condition (and the unconditional rows for guidance) and initial states, video noise drawn first
        cond = torch.cat([cond, uncond.expand(batch, -1, -1)]) if use_cfg else cond
        cond = cond.to(device, dtype)
        if denoise_video:
            latents = torch.randn((batch, *latent_shape), generator=generator, dtype=torch.float32).to(device, dtype)
        else:
            latents = video_latents.to(device, dtype)
        length = self.max_text_len
        if denoise_text and discrete:
            text_state = flow.sample_source((batch, length), generator).to(device)
        elif denoise_text:
            shape = (batch, length, transformer.config.text_latent_dim)
            text_state = torch.randn(shape, generator=generator).to(device, dtype)
        else:
            clean = text_ids.to(device) if discrete else flow.encode(text_ids.to(device)).to(dtype)
            clean_inputs = self._trim(*self._text_inputs(clean, use_cfg))
            text_state = None

        # 2. Timesteps: the scheduler's sigmas for video, linear ones for text
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        video_sigmas = self.scheduler.sigmas.tolist()
        text_sigmas = torch.linspace(1.0, 0.0, num_inference_steps + 1).tolist()
        self._num_timesteps, self._interrupt = num_inference_steps, False

        # 3. The loop
        video_context = VideoContext() if video_cache_interval > 1 else None
        end_ids = self._end_ids()  # read from the tokenizer once, not per step
        self._start_run(generating=denoise_video)
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i in range(num_inference_steps):
                if self.interrupt:
                    continue
                # One forward for both streams over [cond rows (, uncond rows)]; captioning on a cached clip
                # records the clip's context every video_cache_interval steps and runs the text tokens only between
                text_kwargs, mask = self._text_inputs(text_state, use_cfg) if denoise_text else clean_inputs
                video_sigma = video_sigmas[i] if denoise_video else 0.0
                if video_context is not None and i % video_cache_interval:
                    video_kwargs = {"video_latents": None, "video_timestep": None}  # the text, on the cached clip
                else:
                    video_kwargs = {
                        "video_latents": torch.cat([latents, latents]) if use_cfg else latents,
                        "video_timestep": _timesteps(video_sigma, rows, device),
                    }
                if video_context is not None:
                    video_kwargs["video_context"] = video_context
                self._current_timestep = to_timestep(video_sigma)  # what PyramidAttentionBroadcast reads
                with transformer.cache_context(
                    "cond", step_index=i, sigma=video_sigma, num_inference_steps=num_inference_steps
                ):
                    out = transformer(
                        **video_kwargs,
                        encoder_hidden_states=cond,
                        text_timestep=_timesteps(text_sigmas[i] if denoise_text else 0.0, rows, device),
                        text_attention_mask=mask,
                        **text_kwargs,
                    )
                step = {"prev_latents": latents, "prev_text_state": text_state, "prompt_embeds": cond}

                # Video step (guided)
                if denoise_video:
                    velocity = _guided(out.video_velocity, batch, guidance_scale)
                    latents = self.scheduler.step(velocity, self.scheduler.timesteps[i], latents, return_dict=False)[0]
                    step["video_velocity"] = velocity

                # Text step (conditional rows only)
                if denoise_text:
                    sigmas = text_sigmas[i : i + 2]
                    if discrete:
                        prediction = out.text_logits[:batch]
                        text_state = flow.step(
                            text_state, prediction, *sigmas, text_temperature, generator, text_order, end_ids
                        )
                    else:
                        prediction = out.text_velocity[:batch]
                        text_state = flow.step(text_state, prediction, *sigmas)
                    step["text_prediction"] = prediction

                if callbacks:
                    self._step_sigmas = (
                        tuple(video_sigmas[i : i + 2]) if denoise_video else None,
                        tuple(text_sigmas[i : i + 2]) if denoise_text else None,
                    )
                    step.update(latents=latents, text_state=text_state)
                    for step_callback, names in callbacks:
                        outputs = step_callback(self, i, self.scheduler.timesteps[i], {k: step.get(k) for k in names})
                        outputs = outputs or {}
                        latents = outputs.pop("latents", latents)
                        text_state = outputs.pop("text_state", text_state)
                        cond = outputs.pop("prompt_embeds", cond)
                progress_bar.update()
        self._current_timestep = None

        ids = (text_state if discrete else flow.decode(text_state)[0]) if denoise_text else None
        return latents, ids, recorder.steps if return_trajectory else None

    # ---------------------------------------------------------------------------------------------
    # One call for every task, in diffusers' phases
    def check_inputs(self, prompt, video, generate_text, output_type, callback_on_step_end_tensor_inputs) -> None:
        """Raise a one-line error for inputs no task takes (steps, sizes and the rest are checked where used)."""
        if video is not None and generate_text:
            raise ValueError("generate_text makes a clip and its caption from a prompt; a given video is captioned")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        self._check_tensor_inputs(callback_on_step_end_tensor_inputs or [])
        if video is None and (prompt is None or (isinstance(prompt, list) and not prompt)):
            raise PromptError("the prompt is empty; describe the clip you want")

    def embed_texts(self, texts: list[str], device, dtype) -> torch.Tensor:
        """UMT5 embeddings [B, max_sequence_length, text_dim] of ``texts``, zero past each one's length (Wan's)."""
        return encode_texts(self.tokenizer, self.text_encoder, texts, device, dtype)

    def encode_prompt(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        device=None,
        dtype=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prompt embeddings [B, L_c, D], negative ones [1 or B, L_c, D] or ``None`` without guidance), as
        ``WanPipeline.encode_prompt``; given embeddings are used as they are."""
        device, dtype = device or self._execution_device, dtype or self.transformer.dtype
        if prompt_embeds is None:
            prompt_embeds = self.embed_texts([prompt] if isinstance(prompt, str) else list(prompt), device, dtype)
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative = negative_prompt or ""
            negative_prompt_embeds = self.embed_texts(
                [negative] if isinstance(negative, str) else negative, device, dtype
            )
        return prompt_embeds.to(device, dtype), negative_prompt_embeds if do_classifier_free_guidance else None

    def _postprocess(self, latents: torch.Tensor, output_type: str):
        """Clips in ``output_type``'s form: ``np`` float [B, F, H, W, 3] in [0, 1] (WanPipeline's), ``pt``
        [B, F, 3, H, W], ``pil`` a list of frame lists, ``latent`` the normalised latents [B, C, f, h, w],
        ``uint8`` the decoded frames as they are [B, F, H, W, 3] (what the task methods return, per clip)."""
        if output_type == "latent":
            return latents
        clips = np.stack([self.decode_latents(row) for row in latents])  # uint8 [B, F, H, W, 3]
        if output_type == "uint8":
            return clips
        if output_type == "pil":
            return [[PIL.Image.fromarray(frame) for frame in clip] for clip in clips]
        frames = frames_to_unit(clips)
        return torch.from_numpy(frames).permute(0, 1, 4, 2, 3) if output_type == "pt" else frames

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        video: np.ndarray | list[np.ndarray] | None = None,
        generate_text: bool = False,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 5.0,
        text_temperature: float = 0.0,
        video_cache_interval: int = CAPTION_VIDEO_CACHE_INTERVAL,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
    ) -> UniViGUPipelineOutput | tuple:
        """Run the task the inputs name: ``video`` given, caption it (``prompt`` optionally conditions the
        caption); otherwise generate a clip from ``prompt``, holding the prompt in the text stream
        (text-to-video) or, with ``generate_text``, denoising a caption with it (joint generation).

        A list of prompts (or of clips) is one batch. ``num_inference_steps`` defaults to 30 for generation and
        ``CAPTION_STEPS`` for captioning; ``video_cache_interval`` applies to captioning (:meth:`sample`).
        Without ``seed`` or ``generator`` a seed is drawn at random and reported as ``.seed``.
        ``callback_on_step_end`` is diffusers' (see :meth:`sample`); ``callback`` / ``return_trajectory`` record
        one row's :class:`TrajectoryStep` s. Returns frames (``output_type``), ``text`` (captions; ``None`` for
        text-to-video), ``seed``; a tuple (frames, text) when ``return_dict`` is false.
        """
        # 1. Check inputs; the task follows from them
        self.check_inputs(prompt, video, generate_text, output_type, callback_on_step_end_tensor_inputs)
        captioning = video is not None
        batched = isinstance(video if captioning else prompt, (list, tuple))
        steps = num_inference_steps if num_inference_steps is not None else (CAPTION_STEPS if captioning else 30)
        if captioning:
            clips = list(video) if batched else [video]
            if not clips:
                raise ValueError("no clips to caption: pass one clip [F, H, W, 3] or a non-empty list of them")
            check_video_cache_interval(video_cache_interval)
            prompts = [
                self._validate_prompt(p, required=False) or ""
                for p in (prompt if isinstance(prompt, list) else [prompt])
            ]
            if len(prompts) not in (1, len(clips)):
                raise ValueError(f"{len(prompts)} prompts for {len(clips)} clips: give one prompt, or one per clip")
            size = self.check_size(None, None, None)
        else:
            prompts = [self._validate_prompt(p, required=True) for p in (prompt if batched else [prompt])]
            size = self.check_size(num_frames, height, width)
        generator, seed = self._prepare(generator, seed, steps)

        # 2. Encode the prompt (and the negative prompt for guidance)
        use_cfg = not captioning and guidance_scale > 1.0
        cond, uncond = self.encode_prompt(prompts, negative_prompt, use_cfg, prompt_embeds, negative_prompt_embeds)
        if captioning and len(cond) == 1:
            cond = cond.expand(len(clips), -1, -1)  # one prompt for every clip: encoded once

        # 3. Prepare the streams: the clips to caption held clean, or noise of the clip's shape; the text stream
        # from its source, or the prompt held clean (text-to-video)
        notes = []
        if captioning:
            fitted = [fit_video(clip, *size) for clip in clips]
            notes = [n for _, n in fitted]
            video_kwargs = {"video_latents": torch.cat([self.encode_video(frames) for frames, _ in fitted])}
            video_kwargs["video_cache_interval"] = min(video_cache_interval, steps)
        else:
            video_kwargs = {"latent_shape": self._latent_shape(*size)}
        text_ids = None if captioning or generate_text else self.text_id_rows(prompts)

        # 4. Denoise (the timesteps and the loop: :meth:`sample`)
        latents, ids, trajectory = self.sample(
            cond,
            uncond,
            **video_kwargs,
            text_ids=text_ids,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            text_temperature=text_temperature,
            generator=generator,
            callback=callback,
            return_trajectory=return_trajectory,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )

        # 5. Decode: the clips (none when captioning) and the captions
        frames = None if captioning else self._postprocess(latents, output_type)
        text = None
        if ids is not None:
            texts = [self.decode_text(row) for row in ids]
            text = texts if batched else texts[0]
        notes = notes if batched else (notes[0] if notes else [])

        # 6. Offload all models
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, text
        return UniViGUPipelineOutput(frames=frames, text=text, trajectory=trajectory, notes=notes, seed=seed)
