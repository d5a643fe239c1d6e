"""UniViGUPipeline: text-to-video, captioning and joint generation with one unified transformer.

All three tasks run the same loop over the same ``[video; text]`` forward; they differ only in which stream starts
from noise (:mod:`univigu.pipeline_streams`):

============  =====================  =========================
task          video                  text stream
============  =====================  =========================
text_to_video  noise -> clean          the prompt, clean
caption        the input clip, clean  source -> clean
joint          noise -> clean          source -> clean, in step
============  =====================  =========================

:meth:`UniViGUPipeline.__call__` is the one way to run: it reads the task from its inputs and runs it in diffusers'
phases (check the inputs, encode the prompt, prepare the streams, denoise, decode, offload); ``text_to_video`` /
``caption`` / ``joint`` wrap it for one clip. What a caller records of each step is a ``callback_on_step_end``
(:class:`univigu.trajectory.TrajectoryRecorder` records the whole trajectory).
Classifier-free guidance (video only) appends B unconditional rows (empty prompt, empty text stream) to the same
forward. A text position holding the pad token is masked as a key, so text columns masked in every row are trimmed
before the loop: exact, and not computed.
"""

import threading
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, FlowMatchEulerDiscreteScheduler

from .caching import StepCaches
from .clip_size import ClipSizes
from .flows import to_timestep
from .latents import denormalize, frames_to_pixels, frames_to_unit, normalize, pixels_to_frames
from .lora import UniViGULoraLoaderMixin
from .models import UniViGUTransformer
from .pipeline_output import UniViGUPipelineOutput
from .pipeline_streams import TextStream, VideoStream
from .pipeline_text import (
    encode_texts,
    max_sequence_length,
    require_prompt,
    stream_ids,
    template_ids,
    text_stream_ids,
    unknown_words,
)
from .settings import (
    CAPTION_STEPS,
    CAPTION_VIDEO_CACHE_INTERVAL,
    GENERATION_STEPS,
    GUIDANCE_SCALE,
    check_steps,
    check_video_cache_interval,
    default_steps,
    draw_seed,
)
from .trajectory import TrajectoryRecorder
from .video_io import fit_video

OUTPUT_TYPES = ("np", "pt", "pil", "latent", "uint8")


class Cancelled(Exception):
    """Raised by a step callback to stop a run; the pipeline lets it through untouched."""


class UniViGUPipeline(DiffusionPipeline, UniViGULoraLoaderMixin):
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
    # what callback_on_step_end may ask for: the states after the step, before it, the step's predictions and
    # noise levels ((from, to) per stream, None for a stream held clean)
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
        # Every task reuses the prompt's projections across steps (exact); a step cache is chosen by the user.
        self.step_caches = StepCaches(transformer, lambda: self._current_timestep)
        self._current_timestep, self._interrupt, self._num_timesteps, self._guidance_scale = None, False, 0, 1.0

    # ---------------------------------------------------------------------------------------------
    # What a run is doing, as diffusers' pipelines say it
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Guidance by the unconditional rows: a clip is generated and ``guidance_scale`` > 1."""
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def current_timestep(self):
        return self._current_timestep

    @property
    def interrupt(self) -> bool:
        """Set ``pipe.interrupt = True`` (or diffusers' ``pipe._interrupt``), e.g. in a step callback, to skip the
        run's remaining steps."""
        return self._interrupt

    @interrupt.setter
    def interrupt(self, value: bool) -> None:
        self._interrupt = bool(value)

    @property
    def max_sequence_length(self) -> int:
        """Prompt tokens the text encoder sees (Wan: 512)."""
        return max_sequence_length(self.tokenizer)

    @property
    def max_text_len(self) -> int:
        """Positions of the text stream."""
        return self.transformer.config.max_text_len

    # ---------------------------------------------------------------------------------------------
    # Step caches
    def set_step_cache(self, spec: str | None) -> None:
        """Use diffusers' approximate step cache ``spec`` = ``NAME[:VALUE]`` (:mod:`univigu.caching`) for
        text-to-video and joint generation from the next run on; ``None`` or ``"none"`` turns it off.

        Idempotent and safe between runs; a bad spec raises a one-line ``ValueError`` and changes nothing.
        Captioning runs without it (a clip held clean would look converged to it) and turns it back on after.
        The exact prompt cache is always on.
        """
        self.step_caches.set(spec)

    @property
    def step_cache(self) -> str:
        """The step cache in use for generation, as a canonical spec (``"none"``, ``"first_block:0.05"``, ...)."""
        return self.step_caches.spec

    # ---------------------------------------------------------------------------------------------
    # Sizes and latents
    def check_size(self, num_frames: int | None, height: int | None, width: int | None) -> tuple[int, int, int]:
        """Fill the trained size for a ``None`` and validate against the model's grid (:class:`ClipSizes`);
        raises ``ValueError`` with the nearest valid values."""
        return ClipSizes.of(self).check(num_frames, height, width)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """Latent shape (C, f, h, w) of one clip of this size."""
        return (
            self.transformer.config.in_channels,
            (num_frames - 1) // self.vae_scale_factor_temporal + 1,
            height // self.vae_scale_factor_spatial,
            width // self.vae_scale_factor_spatial,
        )

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

    # ---------------------------------------------------------------------------------------------
    # Text: prompts for the text encoder, ids for the text stream, and the stream read back as text
    def text_ids(self, text: str) -> list[int]:
        """Text-stream ids of ``text`` (with the tokenizer's end token); raises PromptError if too long."""
        return stream_ids(self.tokenizer, text, self.max_text_len)

    def text_id_rows(self, texts: list[str]) -> torch.Tensor:
        """Clean text-stream ids [B, max_text_len] of ``texts``, padded with the pad token."""
        return text_stream_ids(self.tokenizer, texts, self.max_text_len, self.transformer.config.pad_token_id)

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the tokenizer maps to its unknown token (empty for subword vocabularies)."""
        return unknown_words(self.tokenizer, text)

    def decode_text(self, ids: list[int] | torch.Tensor) -> str:
        """A text-stream state as a sentence: cut at the first end/pad token, masked positions as ``_``."""
        ids = [int(i) for i in ids]
        stops = {self.tokenizer.eos_token_id, self.transformer.config.pad_token_id}
        end = next((k for k, i in enumerate(ids) if i in stops), len(ids))
        pieces, chunk = [], []
        for i in ids[:end] + [None]:  # None flushes the last chunk
            if i is not None and i != self.transformer.mask_token_id:
                chunk.append(i)
                continue
            if chunk:
                pieces.append(self.tokenizer.decode(chunk, skip_special_tokens=True))
            chunk = []
            if i is not None:
                pieces.append("_")
        return " ".join(p for p in pieces if p).strip()

    def token_strings(self, ids: list[int]) -> list[str]:
        """Display strings of text-stream ids (``<mask>`` for the mask token)."""
        mask_id = self.transformer.mask_token_id
        return ["<mask>" if i == mask_id else self.tokenizer.convert_ids_to_tokens(i) for i in ids]

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

    def _validate_prompt(self, prompt: str | None, required: bool) -> str | None:
        if not required and (prompt is None or not str(prompt).strip()):
            return None
        prompt = require_prompt(prompt)
        self.text_ids(prompt)
        return prompt

    def _end_ids(self) -> tuple[int, ...]:
        """The ids that end a text-stream state: the tokenizer's end token (if it has one) and the pad id."""
        eos = self.tokenizer.eos_token_id
        pad = self.transformer.config.pad_token_id
        return (pad,) if eos is None else (eos, pad)

    # ---------------------------------------------------------------------------------------------
    # Checks, once per run and before any model work
    def check_inputs(
        self, prompt, video, video_latents, text_ids, generate_text, output_type, callback_on_step_end_tensor_inputs
    ) -> None:
        """Raise a one-line error for inputs no task takes (steps, sizes and the rest are checked where used)."""
        captioning = video is not None or video_latents is not None
        if video is not None and video_latents is not None:
            raise ValueError("pass the clips to caption as video (frames) or as video_latents, not both")
        if captioning and generate_text:
            raise ValueError("generate_text makes a clip and its caption from a prompt; a given video is captioned")
        if text_ids is not None and (captioning or generate_text):
            raise ValueError("text_ids are the text held in text-to-video; captioning and joint generation write it")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        unknown = set(callback_on_step_end_tensor_inputs or []) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs: {sorted(unknown)} not in {self._callback_tensor_inputs}"
            )
        if not captioning and (prompt is None or (isinstance(prompt, list) and not prompt)):
            require_prompt(None)

    def _check_text_ids(self, text_ids: torch.Tensor) -> None:
        """Given text-stream ids must be the model's: checked once per run, outside the transformer's forward."""
        if self.transformer.config.text_formulation != "discrete" or not text_ids.numel():
            return
        classes = self.transformer.num_text_classes
        low, high = int(text_ids.min()), int(text_ids.max())
        if low < 0 or high >= classes:
            raise ValueError(f"text_ids must be ids in [0, {classes}), got {low}..{high}")

    def _generator(self, generator, seed) -> tuple[torch.Generator, int | None]:
        """The run's generator and the seed it was made from: ``seed``'s, or one drawn at random when neither a
        seed nor a generator is given (reported in the output; ``None`` with a caller's generator)."""
        if generator is not None:
            return generator, None
        seed = int(seed) if seed is not None else draw_seed()
        return torch.Generator("cpu").manual_seed(seed), seed

    # ---------------------------------------------------------------------------------------------
    # One call for every task
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
        guidance_scale: float = GUIDANCE_SCALE,
        text_temperature: float = 0.0,
        text_order: str = "auto",
        video_cache_interval: int = CAPTION_VIDEO_CACHE_INTERVAL,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        latents: torch.Tensor | None = None,
        video_latents: torch.Tensor | None = None,
        text_ids: torch.Tensor | None = None,
        template: str | list[str] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        return_trajectory: bool = False,
    ) -> UniViGUPipelineOutput | tuple:
        """Run the task the inputs name: ``video`` (or ``video_latents``) given, caption it (``prompt`` optionally
        conditions the caption); otherwise generate a clip from ``prompt``, holding the prompt in the text stream
        (text-to-video) or, with ``generate_text``, denoising a caption with it (joint generation).

        Args:
            prompt, negative_prompt: a text or a list (one batch); ``prompt_embeds`` / ``negative_prompt_embeds``
                [B, L_c, D] replace their encoding.
            video: uint8 clips [F, H, W, 3] (one, or a list: one batch), fitted to the model's size (noted);
                ``video_latents`` [B, C, f, h, w] are clips already encoded (normalised), held as given.
            num_inference_steps: ``settings.GENERATION_STEPS`` for generation, ``settings.CAPTION_STEPS`` for
                captioning unless given.
            latents: the starting noise [B, C, f, h, w] of generated clips (drawn from the generator otherwise).
            text_ids: the clean text-stream ids [B, L] held in text-to-video instead of the prompt's.
            template: captioning by filling in blanks (one template, or one per clip): a caption in which ``_``
                marks a text position to fill and ``_*N`` N positions; every other token is held at every step
                and appears unchanged in ``text`` (:func:`~univigu.pipeline_text.template_ids`). Needs a
                discrete text stream (a mask or uniform source).
            text_temperature, text_order: a discrete text step's sampling (0: greedy) and which masked positions
                it reveals (``"confidence"``, ``"random"``, ``"auto"``: confidence for the mask source).
            video_cache_interval: captioning computes the clip's keys and values every k steps and runs the text
                alone between (1: the full sequence every step; >= the steps: the clip once).
            generator, seed: draw, in order, all rows' video noise, their text source, then each step's random
                text jumps. Without either a seed is drawn at random and reported as ``.seed``.
            output_type: ``np`` float [B, F, H, W, 3] in [0, 1], ``pt`` [B, F, 3, H, W], ``pil``, ``latent`` (the
                normalised latents) or ``uint8`` (the decoded frames as they are).
            callback_on_step_end, callback_on_step_end_tensor_inputs: diffusers' step callback,
                ``callback(pipe, step, timestep, callback_kwargs) -> dict``, given the named entries of
                ``_callback_tensor_inputs`` (a callback with a ``tensor_inputs`` attribute, as diffusers'
                ``PipelineCallback`` and :class:`TrajectoryRecorder`, names its own); returning ``latents``,
                ``text_state`` or ``prompt_embeds`` replaces them. ``pipe.interrupt = True`` skips the remaining
                steps; a callback raising :class:`Cancelled` stops the run.
            return_trajectory: record one row's :class:`~univigu.trajectory.TrajectoryStep` s in ``.trajectory``.

        Returns ``frames`` (``output_type``; ``None`` when captioning), ``text`` (captions; ``None`` for
        text-to-video), ``seed``, ``notes``; a tuple (frames, text) when ``return_dict`` is false.
        """
        # 1. Check inputs; the task follows from them
        self.check_inputs(
            prompt, video, video_latents, text_ids, generate_text, output_type, callback_on_step_end_tensor_inputs
        )
        if template is not None and video is None and video_latents is None:
            raise ValueError("a template is filled in from a clip: pass the video to caption")
        captioning = video is not None or video_latents is not None
        batched = isinstance(video if video is not None else prompt, (list, tuple)) or video_latents is not None
        steps = check_steps(num_inference_steps if num_inference_steps is not None else default_steps(captioning))
        if captioning:
            check_video_cache_interval(video_cache_interval)
            clips = None if video is None else (list(video) if isinstance(video, (list, tuple)) else [video])
            if clips is not None and not clips:
                raise ValueError("no clips to caption: pass one clip [F, H, W, 3] or a non-empty list of them")
            batch = len(clips) if clips is not None else len(video_latents)
            prompts = [
                self._validate_prompt(p, required=False) or ""
                for p in (prompt if isinstance(prompt, list) else [prompt])
            ]
            if len(prompts) not in (1, batch):
                raise ValueError(f"{len(prompts)} prompts for {batch} clips: give one prompt, or one per clip")
            size = self.check_size(None, None, None)
        else:
            prompts = [self._validate_prompt(p, required=True) for p in (prompt if batched else [prompt])]
            batch, size = len(prompts), self.check_size(num_frames, height, width)
        held = None
        if template is not None:  # the template's tokens held, its blanks denoised
            templates = list(template) if isinstance(template, (list, tuple)) else [template]
            if len(templates) not in (1, batch):
                raise ValueError(f"{len(templates)} templates for {batch} clips: give one, or one per clip")
            pad = self.transformer.config.pad_token_id
            rows = [template_ids(self.tokenizer, t, self.max_text_len, pad) for t in templates] * (
                batch if len(templates) == 1 else 1
            )
            text_ids, held = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
        if text_ids is not None:
            self._check_text_ids(text_ids)
        if return_trajectory and batch > 1:
            raise ValueError(f"trajectories follow one row; got a batch of {batch}")
        generator, seed = self._generator(generator, seed)
        self._guidance_scale = guidance_scale if not captioning else 1.0

        # 2. Encode the prompt (and the negative prompt for guidance)
        cond, uncond = self.encode_prompt(
            prompts, negative_prompt, self.do_classifier_free_guidance, prompt_embeds, negative_prompt_embeds
        )
        if captioning and len(cond) == 1:
            cond = cond.expand(batch, -1, -1)  # one prompt for every clip: encoded once

        # 3. Prepare the streams: the clips to caption held clean, or noise of the clip's shape; the text stream
        # from its source, or the prompt held clean (text-to-video)
        notes = []
        if captioning and video_latents is None:
            fitted = [fit_video(clip, *size) for clip in clips]
            notes = [n for _, n in fitted]
            video_latents = torch.cat([self.encode_video(frames) for frames, _ in fitted])
        if captioning:
            video_stream = VideoStream(
                self.scheduler, clean=video_latents, cache_interval=min(video_cache_interval, steps)
            )
        else:
            shape = self.latent_shape(*size)
            video_stream = VideoStream(self.scheduler, shape=shape, noise=latents, guidance_scale=guidance_scale)
        if not captioning and not generate_text and text_ids is None:
            text_ids = self.text_id_rows(prompts)
        text_stream = TextStream(self.transformer, text_ids, text_temperature, text_order, self._end_ids(), held)

        # 4. Denoise
        recorder = TrajectoryRecorder(keep_latents=True) if return_trajectory else None
        callbacks = [(recorder, recorder.tensor_inputs)] if recorder is not None else []
        if callback_on_step_end is not None:
            names = callback_on_step_end_tensor_inputs or getattr(callback_on_step_end, "tensor_inputs", ["latents"])
            callbacks.append((callback_on_step_end, names))
        video_stream.prepare(batch, steps, generator, self._execution_device, self.transformer.dtype)
        text_stream.prepare(
            batch, steps, generator, self._execution_device, self.transformer.dtype, video_stream.guided
        )
        cond = torch.cat([cond, uncond.expand(batch, -1, -1)]) if video_stream.guided else cond
        self._denoise(
            video_stream,
            text_stream,
            cond.to(self._execution_device, self.transformer.dtype),
            steps,
            generator,
            callbacks,
        )

        # 5. Decode: the clips (none when captioning) and the captions
        frames = None if captioning else self._postprocess(video_stream.state, output_type)
        ids, text = text_stream.ids(), None
        if ids is not None:
            texts = [self.decode_text(row) for row in ids]
            text = texts if batched else texts[0]
        notes = notes if batched else (notes[0] if notes else [])

        # 6. Offload all models
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, text
        trajectory = recorder.steps if recorder is not None else None
        return UniViGUPipelineOutput(frames=frames, text=text, trajectory=trajectory, notes=notes, seed=seed)

    def _denoise(self, video: VideoStream, text: TextStream, cond, steps: int, generator, callbacks) -> None:
        """The loop: one forward of both streams per step, each stream stepped on its own output."""
        transformer = self.transformer
        self._num_timesteps, self._interrupt = steps, False
        self.step_caches.start_run(generating=video.denoised)
        self._current_timestep = None
        with self.progress_bar(total=steps) as progress_bar:
            for i in range(steps):
                if self.interrupt:
                    continue
                sigma = video.sigma(i)
                self._current_timestep = to_timestep(sigma)  # what PyramidAttentionBroadcast reads
                with transformer.cache_context("cond", step_index=i, sigma=sigma, num_inference_steps=steps):
                    out = transformer(**video.model_inputs(i), **text.model_inputs(i), encoder_hidden_states=cond)
                state = {"prev_latents": video.state, "prev_text_state": text.state, "prompt_embeds": cond}
                state |= video.step(i, out) | text.step(i, out, generator)
                if callbacks:
                    state |= {"latents": video.state, "text_state": text.state}
                    state |= {"video_sigmas": video.step_sigmas(i), "text_sigmas": text.step_sigmas(i)}
                    state["text_held"] = text.held
                    for callback, names in callbacks:
                        outputs = callback(self, i, self.scheduler.timesteps[i], {k: state.get(k) for k in names})
                        outputs = outputs or {}
                        video.state = outputs.pop("latents", video.state)
                        text.state = outputs.pop("text_state", text.state)
                        cond = outputs.pop("prompt_embeds", cond)
                progress_bar.update()
        self._current_timestep = None

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

    # ---------------------------------------------------------------------------------------------
    # The three tasks for one clip: thin wrappers over __call__
    def text_to_video(
        self,
        prompt: str,
        negative_prompt: str = "",
        num_inference_steps: int = GENERATION_STEPS,
        guidance_scale: float = GUIDANCE_SCALE,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        callback_on_step_end: Callable | None = None,
        return_trajectory: bool = False,
    ) -> UniViGUPipelineOutput:
        """Generate a clip from ``prompt``: video from noise, the prompt held clean in the text stream.

        Returns ``.frames`` uint8 [F, H, W, 3] (and ``.trajectory`` if asked)."""
        out = self(
            prompt,
            negative_prompt,
            num_frames=num_frames,
            height=height,
            width=width,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generator,
            seed=seed,
            callback_on_step_end=callback_on_step_end,
            return_trajectory=return_trajectory,
            output_type="uint8",
        )
        out.frames = out.frames[0]
        return out

    def caption(
        self,
        video: np.ndarray | list[np.ndarray],
        prompt: str | None = None,
        num_inference_steps: int = CAPTION_STEPS,
        text_temperature: float = 0.0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        callback_on_step_end: Callable | None = None,
        return_trajectory: bool = False,
        video_cache_interval: int = CAPTION_VIDEO_CACHE_INTERVAL,
        template: str | list[str] | None = None,
    ) -> UniViGUPipelineOutput:
        """Describe ``video`` (uint8 [F, H, W, 3], any size: it is fitted to the model's and noted).

        The clip is held clean; the text stream is denoised from its source. ``prompt`` optionally
        conditions the caption (without one the prompt slot is empty, as in Stage 1's dropped prompts).
        ``video_cache_interval``: the clip's keys and values are computed every k steps and the steps between
        run only the text (1 is the full sequence every step).
        ``template``: ask the clip by filling in blanks, e.g. ``"a _ circle at the _ moves _*2 ..."``: ``_`` is one
        position to fill, ``_*N`` N positions; the rest of the template is held and kept as it is.

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
            template=template,
            generator=generator,
            seed=seed,
            callback_on_step_end=callback_on_step_end,
            return_trajectory=return_trajectory,
        )

    def joint(
        self,
        prompt: str,
        negative_prompt: str = "",
        num_inference_steps: int = GENERATION_STEPS,
        guidance_scale: float = GUIDANCE_SCALE,
        text_temperature: float = 0.0,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        callback_on_step_end: Callable | None = None,
        return_trajectory: bool = False,
    ) -> UniViGUPipelineOutput:
        """Generate a clip and its caption together from ``prompt``, both denoised step by step."""
        out = self(
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
            callback_on_step_end=callback_on_step_end,
            return_trajectory=return_trajectory,
            output_type="uint8",
        )
        out.frames = out.frames[0]
        return out
