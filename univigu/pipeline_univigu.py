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

The loop, :meth:`UniViGUPipeline.sample`, takes tensors for B rows at once (the tasks pass one row;
evaluation and validation pass many). Classifier-free guidance (video only) appends B unconditional rows
(empty prompt, empty text stream) to the same forward. A text position holding the pad token is masked
as a key, so text columns masked in every row are trimmed before the loop: exact, and not computed.
Discrete text steps keep a text's form — words, one end token, pads (``DiscreteTextFlow.step``'s
``end_token_ids``); ``text_shift`` reveals the text ahead of (or behind) a linear schedule.
"""

import threading
from collections.abc import Callable

import numpy as np
import torch
from diffusers import (
    AutoencoderKLWan,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
)
from diffusers.pipelines.wan.pipeline_wan import prompt_clean

from .caching import StepCacheMixin, apply_prompt_cache
from .flows import DiscreteTextFlow, shifted_sigmas, text_flow_for, to_timestep
from .latents import denormalize, frames_to_pixels, normalize, pixels_to_frames
from .models import UniViGUTransformer
from .models.video_context import VideoContext
from .pipeline_output import TrajectoryStep, UniViGUPipelineOutput, record_video_step
from .video_io import fit_video

StepCallback = Callable[[TrajectoryStep], None]

# Captioning's default steps. The clip is held clean, so steps only pace the text: with the mask source the
# sampler reveals the surest tokens first, about one of the bundled model's 32 text positions per step at 40;
# fewer steps leave captions that do not parse, more score the same (training/shapesworld/EXPERIMENTS.md).
CAPTION_STEPS = 40

# Captioning's default video_cache_interval (UniViGUPipeline.sample): the clip's per-block keys and values are
# computed at step 0 and every k-th step after, the steps between run only the text tokens on them. The largest
# k whose captions stay within 1 point of k = 1 on every attribute (the README's "Captioning on a cached clip").
CAPTION_VIDEO_CACHE_INTERVAL = 20


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


class PromptError(ValueError):
    """A prompt the model cannot take (empty, too long)."""


class UniViGUPipeline(StepCacheMixin, DiffusionPipeline):
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
        self._current_timestep = None

    # ---------------------------------------------------------------------------------------------
    # Sizes and text
    @property
    def max_sequence_length(self) -> int:
        """Prompt tokens the text encoder sees (Wan: 512)."""
        return min(int(self.tokenizer.model_max_length), 512)

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

    def text_ids(self, text: str) -> list[int]:
        """Text-stream ids of ``text`` (with the tokenizer's end token); raises PromptError if too long."""
        ids = self.tokenizer(prompt_clean(text), add_special_tokens=True).input_ids
        if len(ids) > self.max_text_len:
            raise PromptError(
                f"the prompt is {len(ids)} tokens; this model's text stream holds at most "
                f"{self.max_text_len}. Shorten it."
            )
        return ids

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the tokenizer maps to its unknown token (empty for subword vocabularies)."""
        unk = self.tokenizer.unk_token_id
        if unk is None:
            return []
        return [w for w in prompt_clean(text).split() if unk in self.tokenizer(w, add_special_tokens=False).input_ids]

    def _validate_prompt(self, prompt: str | None, required: bool) -> str | None:
        if prompt is None or not str(prompt).strip():
            if required:
                raise PromptError("the prompt is empty; describe the clip you want")
            return None
        self.text_ids(prompt)
        return str(prompt)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str], device, dtype) -> torch.Tensor:
        """UMT5 embeddings [B, max_sequence_length, text_dim], zero past each prompt's length (Wan's)."""
        n = self.max_sequence_length
        inputs = self.tokenizer(
            [prompt_clean(p) for p in prompts],
            padding="max_length",
            max_length=n,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        encoder_device = self.text_encoder.device
        embeds = self.text_encoder(
            inputs.input_ids.to(encoder_device), inputs.attention_mask.to(encoder_device)
        ).last_hidden_state
        embeds = embeds.to(device=device, dtype=dtype) * inputs.attention_mask.to(device, dtype)[..., None]
        return embeds

    def _end_ids(self) -> tuple[int, ...]:
        """The ids that end a text-stream state: the tokenizer's end token (if it has one) and the pad id."""
        eos = self.tokenizer.eos_token_id
        pad = self.transformer.config.pad_token_id
        return (pad,) if eos is None else (eos, pad)

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

    def _token_strings(self, ids: list[int]) -> list[str]:
        mask_id = self.transformer.mask_token_id
        return ["<mask>" if i == mask_id else self.tokenizer.convert_ids_to_tokens(i) for i in ids]

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
    def text_id_rows(self, texts: list[str]) -> torch.Tensor:
        """Clean text-stream ids [B, max_text_len] of ``texts``, padded with the pad token."""
        ids = torch.full((len(texts), self.max_text_len), self.transformer.config.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            row_ids = self.text_ids(text)
            ids[row, : len(row_ids)] = torch.tensor(row_ids)
        return ids

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
    def _prepare(self, generator, seed, steps):
        if steps < 1 or steps > 1000:
            raise ValueError(f"num_inference_steps must be in 1..1000, got {steps}")
        if generator is None:
            generator = torch.Generator("cpu").manual_seed(int(seed) if seed is not None else 0)
        return generator

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
        text_shift: float = 1.0,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
        video_cache_interval: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[TrajectoryStep] | None]:
        """The denoising loop for B rows; a stream given clean is held, the other is denoised.

        Args:
            cond: prompt embeddings [B, L_c, D] (:meth:`encode_prompt`).
            uncond: the unconditional (negative) prompt's embedding [1, L_c, D]; needed for guidance.
            latent_shape: (C, f, h, w) of the clips to denoise from noise; or
            video_latents: clean normalised latents [B, C, f, h, w] (captioning).
            text_ids: clean text-stream ids [B, L] (:meth:`text_id_rows`); ``None`` denoises the text.
            text_order: which masked tokens a discrete text step reveals (``DiscreteTextFlow.step``):
                ``"confidence"``, ``"random"``, or ``"auto"`` (confidence for the mask source, else random).
            text_shift: the text's noise schedule (:func:`shifted_sigmas`): 1 linear, below 1 the text is
                revealed ahead of the video.
            generator: draws, in order, all rows' video noise, their text source, then each step's random
                text jumps (none in confidence order when greedy).
            callback, return_trajectory: per-step records; for one row only (B = 1).
            video_cache_interval: captioning (``video_latents`` given, text denoised): every k-th step runs the
                full sequence and records each block's video keys and values (:class:`VideoContext`); the steps
                between run only the text tokens on them (no video head). The video tokens attend to the text,
                so k > 1 approximates; 1 (the default) is the full sequence every step, k >= the steps computes
                the clip once.

        Returns (latents [B, C, f, h, w], text ids [B, L] or ``None`` when given, trajectory or ``None``).
        """
        device, dtype = self._execution_device, self.transformer.dtype
        transformer, batch = self.transformer, len(cond)
        denoise_video, denoise_text = video_latents is None, text_ids is None
        use_cfg = denoise_video and guidance_scale > 1.0
        observe = callback is not None or return_trajectory
        if observe and batch > 1:
            raise ValueError(f"step callbacks and trajectories follow one row; got a batch of {batch}")
        if not 0.01 <= text_shift <= 100:
            raise ValueError(f"text_shift must be in 0.01..100, got {text_shift}")
        if use_cfg and uncond is None:
            raise ValueError("guidance_scale > 1 needs the unconditional embedding `uncond`")
        if denoise_video and latent_shape is None:
            raise ValueError("pass latent_shape to generate video, or video_latents to hold it clean")
        check_video_cache_interval(video_cache_interval)
        if video_cache_interval > 1 and (denoise_video or not denoise_text):
            raise ValueError("video_cache_interval > 1 applies to captioning: a clean clip and a text to denoise")
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

        # 2. Schedules: the scheduler's sigmas for video; for text linear, or shifted by text_shift
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        video_sigmas = self.scheduler.sigmas.tolist()
        text_sigmas = shifted_sigmas(num_inference_steps, text_shift)

        trajectory = [] if return_trajectory else None
        prev_ids = None
        video_context = VideoContext() if video_cache_interval > 1 else None
        self._start_run(generating=denoise_video)
        for i in range(num_inference_steps):
            # 3. One forward for both streams over [cond rows (, uncond rows)]; captioning on a cached clip
            # records the clip's context every video_cache_interval steps and runs the text tokens only between
            text_kwargs, mask = self._text_inputs(text_state, use_cfg) if denoise_text else clean_inputs
            video_sigma = video_sigmas[i] if denoise_video else 0.0
            if video_context is not None and i % video_cache_interval:
                video_kwargs = {"video_latents": None, "video_timestep": None}  # the text tokens, on the cached clip
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
            record = TrajectoryStep(step=i + 1, num_steps=num_inference_steps) if observe else None

            # 4. Video step (guided)
            if denoise_video:
                velocity = _guided(out.video_velocity, batch, guidance_scale)
                new_latents = self.scheduler.step(velocity, self.scheduler.timesteps[i], latents, return_dict=False)[0]
                if observe:
                    record_video_step(
                        record, latents, new_latents, velocity, video_sigmas[i : i + 2], return_trajectory
                    )
                latents = new_latents

            # 5. Text step (conditional rows only)
            if denoise_text:
                sigmas = text_sigmas[i : i + 2]
                if discrete:
                    prediction = out.text_logits[:batch]
                    new_state = flow.step(
                        text_state, prediction, *sigmas, text_temperature, generator, text_order, self._end_ids()
                    )
                else:
                    prediction = out.text_velocity[:batch]
                    new_state = flow.step(text_state, prediction, *sigmas)
                if observe:
                    prev_ids = self._record_text(record, flow, text_state, new_state, prediction, sigmas, prev_ids)
                text_state = new_state

            if trajectory is not None:
                trajectory.append(record)
            if callback is not None:
                callback(record)

        ids = (text_state if discrete else flow.decode(text_state)[0]) if denoise_text else None
        return latents, ids, trajectory

    def _record_text(self, record, flow, state, new_state, prediction, sigmas: list[float], prev_ids) -> list[int]:
        """Fill ``record``'s text fields (``prediction``: logits or velocity at ``state``); returns the new ids."""
        sigma, record.text_sigma = sigmas
        if isinstance(flow, DiscreteTextFlow):
            confidence, pred = flow.posterior(prediction).max(-1)
            state_ids = new_state[0].tolist()
        else:
            x1_hat = flow.predict_x0(state, prediction, torch.tensor([sigma], device=state.device))
            pred, confidence = flow.decode(x1_hat)
            state_ids = flow.decode(new_state)[0][0].tolist()
        record.text_ids = state_ids
        record.text_pred_ids = pred[0].tolist()
        record.text_confidence = confidence[0].float().tolist()
        record.text_tokens = self._token_strings(state_ids)
        record.text = self.decode_text(state_ids)
        record.changed = [True] * len(state_ids) if prev_ids is None else [a != b for a, b in zip(prev_ids, state_ids)]
        return state_ids

    # ---------------------------------------------------------------------------------------------
    # The three tasks
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

        Returns ``.frames`` uint8 [F, H, W, 3] (and ``.trajectory`` if asked).
        """
        return self._generate(
            prompt,
            joint=False,
            negative_prompt=negative_prompt,
            steps=num_inference_steps,
            guidance_scale=guidance_scale,
            text_temperature=0.0,
            size=(num_frames, height, width),
            generator=generator,
            seed=seed,
            callback=callback,
            return_trajectory=return_trajectory,
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
        batched = isinstance(video, (list, tuple))
        clips = list(video) if batched else [video]
        if not clips:
            raise ValueError("no clips to caption: pass one clip [F, H, W, 3] or a non-empty list of them")
        check_video_cache_interval(video_cache_interval)
        prompt = self._validate_prompt(prompt, required=False)
        num_frames, height, width = self.check_size(None, None, None)
        fitted = [fit_video(clip, num_frames, height, width) for clip in clips]
        generator = self._prepare(generator, seed, num_inference_steps)
        embeds = self.encode_prompt([prompt or ""], self._execution_device, self.transformer.dtype)
        _, ids, trajectory = self.sample(
            embeds.expand(len(clips), -1, -1),
            video_latents=torch.cat([self.encode_video(frames) for frames, _ in fitted]),
            num_inference_steps=num_inference_steps,
            text_temperature=text_temperature,
            generator=generator,
            callback=callback,
            return_trajectory=return_trajectory,
            video_cache_interval=min(video_cache_interval, num_inference_steps),
        )
        texts = [self.decode_text(row) for row in ids]
        if batched:
            return UniViGUPipelineOutput(text=texts, trajectory=trajectory, notes=[n for _, n in fitted])
        return UniViGUPipelineOutput(text=texts[0], trajectory=trajectory, notes=fitted[0][1])

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
        text_shift: float = 1.0,
    ) -> UniViGUPipelineOutput:
        """Generate a clip and its caption together from ``prompt``, both denoised step by step (the caption's
        schedule shifted by ``text_shift``: :func:`shifted_sigmas`)."""
        return self._generate(
            prompt,
            joint=True,
            negative_prompt=negative_prompt,
            steps=num_inference_steps,
            guidance_scale=guidance_scale,
            text_temperature=text_temperature,
            size=(num_frames, height, width),
            generator=generator,
            seed=seed,
            callback=callback,
            return_trajectory=return_trajectory,
            text_shift=text_shift,
        )

    def _generate(
        self,
        prompt,
        joint,
        negative_prompt,
        steps,
        guidance_scale,
        text_temperature,
        size,
        generator,
        seed,
        callback,
        return_trajectory,
        text_shift=1.0,
    ) -> UniViGUPipelineOutput:
        """text_to_video and joint: video from noise; the text stream clean (the prompt) or from its source."""
        prompt = self._validate_prompt(prompt, required=True)
        size = self.check_size(*size)
        generator = self._prepare(generator, seed, steps)
        use_cfg = guidance_scale > 1.0
        prompts = [prompt, negative_prompt or ""] if use_cfg else [prompt]
        embeds = self.encode_prompt(prompts, self._execution_device, self.transformer.dtype)
        latents, ids, trajectory = self.sample(
            embeds[:1],
            embeds[1:] if use_cfg else None,
            latent_shape=self._latent_shape(*size),
            text_ids=None if joint else self.text_id_rows([prompt]),
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            text_temperature=text_temperature,
            text_shift=text_shift,
            generator=generator,
            callback=callback,
            return_trajectory=return_trajectory,
        )
        text = self.decode_text(ids[0]) if joint else None
        return UniViGUPipelineOutput(frames=self.decode_latents(latents), text=text, trajectory=trajectory)
