"""The two streams of a UniViGU run, each a small object the denoising loop drives the same way.

Every task is the same loop over the same ``[video; text]`` forward; what differs is which stream is denoised:

============  ==========================  ==========================
task          :class:`VideoStream`         :class:`TextStream`
============  ==========================  ==========================
text-to-video  denoised from noise          held clean (the prompt)
captioning     held clean (the clip)        denoised from the source
joint          denoised from noise          denoised from the source
============  ==========================  ==========================

A stream is made with what it holds or how it is denoised, then ``prepare`` draws its start (video noise is
drawn before the text source: the order a seeded run depends on), ``model_inputs(i)`` gives the transformer's
keyword arguments for step ``i`` and ``step(i, output)`` moves the state on. ``state`` is what callbacks see and
may replace. With classifier-free guidance (video only) the forward carries B unconditional rows after the B
conditional ones: an empty text stream (all pad, or every key masked) beside the same video.
"""

import torch

from .flows import DiscreteTextFlow, text_flow_for, to_timestep
from .models.video_context import VideoContext


def _timesteps(sigma: float, rows: int, device) -> torch.Tensor:
    return to_timestep(torch.full((rows,), sigma, device=device))


class VideoStream:
    """The clip: denoised from noise of ``shape`` (C, f, h, w) with the scheduler (``noise`` [B, C, f, h, w] given,
    or drawn by ``prepare``), or ``clean`` latents [B, C, f, h, w] held as they are (captioning).

    ``guidance_scale`` > 1 guides a denoised clip by the unconditional rows. ``cache_interval`` k > 1 (a clean
    clip only) records each block's video keys and values at step 0, k, 2k ... and runs the text tokens alone on
    them between (:class:`VideoContext`).
    """

    def __init__(
        self, scheduler, shape=None, clean=None, noise=None, guidance_scale: float = 5.0, cache_interval: int = 1
    ):
        if (shape is None) == (clean is None):
            raise ValueError("a video stream is either denoised (shape) or held clean (clean latents)")
        if cache_interval > 1 and clean is None:
            raise ValueError("video_cache_interval > 1 applies to captioning: a clean clip and a text to denoise")
        self.scheduler, self.shape, self.clean, self.noise = scheduler, shape, clean, noise
        self.denoised = clean is None
        self.guided = self.denoised and guidance_scale > 1.0
        self.guidance_scale, self.cache_interval = guidance_scale, cache_interval
        self.state = self.sigmas = self.context = None

    def prepare(self, batch: int, num_steps: int, generator, device, dtype) -> None:
        self.batch, self.rows, self.device = batch, 2 * batch if self.guided else batch, device
        if not self.denoised:
            self.state = self.clean.to(device, dtype)
        elif self.noise is not None:
            self.state = self.noise.to(device, dtype)
        else:
            self.state = torch.randn((batch, *self.shape), generator=generator, dtype=torch.float32).to(device, dtype)
        self.scheduler.set_timesteps(num_steps, device=device)  # callbacks are given its timesteps in every task
        self.sigmas = self.scheduler.sigmas.tolist() if self.denoised else None
        self.context = VideoContext() if self.cache_interval > 1 else None

    def sigma(self, i: int) -> float:
        return self.sigmas[i] if self.denoised else 0.0

    def step_sigmas(self, i: int) -> tuple[float, float] | None:
        """(from, to) noise levels of step ``i``; ``None`` for a clip held clean."""
        return tuple(self.sigmas[i : i + 2]) if self.denoised else None

    def model_inputs(self, i: int) -> dict:
        if self.context is not None and i % self.cache_interval:
            inputs = {"video_latents": None, "video_timestep": None}  # the text alone, on the cached clip
        else:
            latents = torch.cat([self.state, self.state]) if self.guided else self.state
            inputs = {"video_latents": latents, "video_timestep": _timesteps(self.sigma(i), self.rows, self.device)}
        if self.context is not None:
            inputs["video_context"] = self.context
        return inputs

    def step(self, i: int, output) -> dict:
        """One scheduler step on the guided velocity; returns what callbacks may read of it."""
        if not self.denoised:
            return {}
        velocity = output.video_velocity
        if self.guided:
            uncond = velocity[self.batch :]
            velocity = uncond + self.guidance_scale * (velocity[: self.batch] - uncond)
        timestep = self.scheduler.timesteps[i]
        self.state = self.scheduler.step(velocity, timestep, self.state, return_dict=False)[0]
        return {"video_velocity": velocity}


class TextStream:
    """The text: denoised from the text flow's source, ``clean`` ids [B, L] held as they are (the prompt in
    text-to-video), or partly held: ``held`` [B, L] marks the positions of ``clean`` kept at every step while the
    others (the blanks of a fill-in template) are denoised from the source.

    Discrete text steps on a linear schedule keep a text's form (words, one end token, pads: ``end_ids``);
    ``order`` picks which masked positions a step reveals (``DiscreteTextFlow.step``). A partly held text is
    given the noise level of what is left to fill (the step's level times the share of positions that are
    blanks), the level at which training saw that many positions masked, and a blank is always filled with a
    word (never an end token).
    """

    def __init__(self, transformer, clean=None, temperature: float = 0.0, order: str = "auto", end_ids=(), held=None):
        self.transformer, self.clean, self.held = transformer, clean, held
        self.flow = text_flow_for(transformer)
        self.discrete = isinstance(self.flow, DiscreteTextFlow)
        if order == "auto":
            order = "confidence" if self.discrete and self.flow.source == "mask" else "random"
        if order != "random" and not self.discrete:
            raise ValueError(f"text_order={order!r} applies to discrete text; this model's text is continuous")
        if held is not None and not self.discrete:
            raise ValueError("filling in a template needs a discrete text stream; this model's text is continuous")
        self.denoised = clean is None or held is not None
        self.temperature, self.order, self.end_ids = temperature, order, end_ids
        self.state = self.sigmas = self._held = self._level = None

    def prepare(self, batch: int, num_steps: int, generator, device, dtype, guided: bool) -> None:
        self.batch, self.rows, self.device, self.guided = batch, 2 * batch if guided else batch, device, guided
        self.sigmas = torch.linspace(1.0, 0.0, num_steps + 1).tolist()
        length = self.transformer.config.max_text_len
        if self.held is not None:  # the blanks from the source, every other position as given
            self.held, self.clean = self.held.to(device), self.clean.to(device)
            self.state = torch.where(
                self.held, self.clean, self.flow.sample_source((batch, length), generator).to(device)
            )
            self._level = (~self.held).float().mean(1)  # [B]: the share of positions to fill
        elif self.denoised and self.discrete:
            self.state = self.flow.sample_source((batch, length), generator).to(device)
        elif self.denoised:
            shape = (batch, length, self.transformer.config.text_latent_dim)
            self.state = torch.randn(shape, generator=generator).to(device, dtype)
        else:
            clean = self.clean.to(device) if self.discrete else self.flow.encode(self.clean.to(device)).to(dtype)
            self._held = self._trim(*self._inputs(clean))

    def step_sigmas(self, i: int) -> tuple[float, float] | None:
        """(from, to) noise levels of step ``i``; ``None`` for a text held clean."""
        return tuple(self.sigmas[i : i + 2]) if self.denoised else None

    def model_inputs(self, i: int) -> dict:
        text, mask = self._inputs(self.state) if self.denoised else self._held
        sigma = self.sigmas[i] if self.denoised else 0.0
        timestep = _timesteps(sigma, self.rows, self.device)
        if self._level is not None:
            level = torch.cat([self._level, self._level]) if self.guided else self._level
            timestep = to_timestep(sigma * level)
        return {**text, "text_attention_mask": mask, "text_timestep": timestep}

    def step(self, i: int, output, generator) -> dict:
        """One text step on the conditional rows' prediction; returns what callbacks may read of it."""
        if not self.denoised:
            return {}
        sigma, next_sigma = self.sigmas[i : i + 2]
        if self.discrete:
            prediction = output.text_logits[: self.batch]
            logits = prediction
            if self.held is not None and self.end_ids:  # a blank takes a word
                logits = prediction.clone()
                blocked = logits[..., list(self.end_ids)].masked_fill(~self.held[..., None], float("-inf"))
                logits[..., list(self.end_ids)] = blocked
            self.state = self.flow.step(
                self.state, logits, sigma, next_sigma, self.temperature, generator, self.order, self.end_ids
            )
            if self.held is not None:
                self.state = torch.where(self.held, self.clean, self.state)
        else:
            prediction = output.text_velocity[: self.batch]
            self.state = self.flow.step(self.state, prediction, sigma, next_sigma)
        return {"text_prediction": prediction}

    def ids(self) -> torch.Tensor | None:
        """The denoised text as ids [B, L]; ``None`` for a text held clean."""
        if not self.denoised:
            return None
        return self.state if self.discrete else self.flow.decode(self.state)[0]

    def _inputs(self, state: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Text kwargs and key mask [rows, L] for a state (ids [B, L] or latents [B, L, D]), with the empty
        unconditional rows after it under guidance."""
        if self.discrete:
            pad = self.transformer.config.pad_token_id
            ids = torch.cat([state, torch.full_like(state, pad)]) if self.guided else state
            return {"text_tokens": ids}, self.transformer.text_key_mask(ids)
        latents = torch.cat([state, state]) if self.guided else state
        mask = torch.arange(len(latents), device=state.device)[:, None] < len(state)
        return {"text_latents": latents}, mask.expand(-1, state.shape[1])

    @staticmethod
    def _trim(text_kwargs: dict, mask: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Drop trailing text columns masked in every row: they change nothing, so skip computing them.

        One column stays when every column is masked (an all-pad batch): the text stream cannot be empty."""
        used = mask.any(0).nonzero()
        keep = int(used.max()) + 1 if len(used) else 1
        return {k: v[:, :keep] for k, v in text_kwargs.items()}, mask[:, :keep]
