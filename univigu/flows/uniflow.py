"""The uni-flow objective: video flow matching and a text flow in one forward pass.

``loss = video_mse + lambda_t * text_loss`` with video and text noise levels drawn independently per
sample, and ``lambda_t = |video tokens| / |text tokens|`` by default so each modality weighs by its
share of the sequence. A sample whose text is *dropped* (``drop_text``) shows the model an empty text
stream (every text key masked) and contributes no text loss: this is how the video branch learns the
unconditional half of classifier-free guidance.

``video_clean_prob`` (0 = the paper) holds a share of samples' video clean (noise level 0): the
condition captioning runs in. With shifted noise levels most samples' video is too noisy to read shape
or motion from, so a small model trained briefly learns to caption from little; a clean sample's video
velocity target is pure noise, so it contributes no video loss.

``text_clean_prob`` (0 = the paper's training draws) holds a share of the other samples' text clean: the
condition text-to-video runs in (clean text, noisy video), where the video can only learn what the text
stream says if the text is all there. A clean sample's text is its own target, so it contributes no text loss.
A caller that must know which samples are held clean before the forward (to choose their condition) draws
them with :meth:`UniFlowLoss.draw_clean` and passes them in.

The loss is two steps around the model's forward, so the caller owns the call (a training loop calls its DDP /
FSDP wrapper): :meth:`UniFlowLoss.prepare` draws the noisy inputs and the targets, :meth:`UniFlowLoss.loss` compares
the model's outputs with the targets; calling the loss object does both around ``transformer(**inputs)``. Without
text ids it is plain video flow matching, for a model with no text stream (a Wan generator through
:class:`univigu.models.WanAdapter`).
"""

from dataclasses import dataclass

import torch

from .text_discrete import DiscreteTextFlow
from .text_embedding import EmbeddingTextFlow
from .time import sample_sigmas, to_timestep
from .video import VideoFlow


def text_flow_for(transformer, exponent: float = 1.0):
    """The text flow matching a transformer's ``text_formulation``."""
    if transformer.config.text_formulation == "discrete":
        return DiscreteTextFlow.from_transformer(transformer, exponent)
    return EmbeddingTextFlow.from_transformer(transformer)


def num_video_tokens(transformer, latent_shape) -> int:
    """Video tokens the transformer makes of latents of ``latent_shape`` (``[..., f, h, w]``, e.g. a tensor's
    ``.shape`` or :meth:`UniViGUPipeline.latent_shape`): one per patch."""
    p_t, p_h, p_w = transformer.config.patch_size
    f, h, w = latent_shape[-3:]
    return (f // p_t) * (h // p_h) * (w // p_w)


def _masked_mean(per_sample: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample`` [B] over the kept rows (0 when none is kept)."""
    keep = keep.float()
    return (per_sample * keep).sum() / keep.sum().clamp_min(1.0)


@dataclass
class UniFlowLossOutput:
    loss: torch.Tensor  # scalar
    video_loss: torch.Tensor  # scalar
    text_loss: torch.Tensor  # scalar
    lambda_text: float
    sigma_video: torch.Tensor  # [B]
    sigma_text: torch.Tensor | None  # [B]; None without a text stream


@dataclass
class UniFlowTargets:
    """What :meth:`UniFlowLoss.loss` compares a forward's outputs with (drawn by :meth:`UniFlowLoss.prepare`)."""

    video: torch.Tensor  # [B, C, F, H, W] the velocity target
    text: torch.Tensor | None  # the clean ids [B, L] (discrete) or the velocity target (embedding); None: no text
    video_rows: torch.Tensor | None  # [B] bool: the rows whose video loss counts (None: no text stream, all)
    text_rows: torch.Tensor | None  # [B] bool: the rows whose text loss counts
    lambda_text: float
    sigma_video: torch.Tensor  # [B]
    sigma_text: torch.Tensor | None  # [B]
    flow: DiscreteTextFlow | EmbeddingTextFlow | None = None
    video_weight: torch.Tensor | None = None  # per-element weights of the video loss (None: a plain mean)


class UniFlowLoss:
    """Callable computing the uni-flow loss of a ``UniViGUTransformer`` on one batch.

    Args:
        lambda_text: ``"auto"`` for |video tokens| / |text tokens|, or a fixed float.
        video_shift: the time shift applied to the uniformly drawn video noise levels (text's are uniform).
        kappa_exponent: discrete path schedule ``kappa(t) = t**n``.
        video_clean_prob: probability that a sample's video is held clean (its noise level set to 0).
        text_clean_prob: probability that a sample whose video is not held clean has its text held clean.
    """

    def __init__(
        self,
        lambda_text: str | float = "auto",
        video_shift: float = 1.0,
        kappa_exponent: float = 1.0,
        video_clean_prob: float = 0.0,
        text_clean_prob: float = 0.0,
    ):
        if lambda_text != "auto" and not float(lambda_text) >= 0:
            raise ValueError(f"lambda_text must be 'auto' or a number >= 0, got {lambda_text!r}")
        if not 0.0 <= video_clean_prob < 1.0:
            raise ValueError(f"video_clean_prob must be in [0, 1), got {video_clean_prob!r}")
        if not 0.0 <= text_clean_prob < 1.0:
            raise ValueError(f"text_clean_prob must be in [0, 1), got {text_clean_prob!r}")
        self.lambda_text = lambda_text
        self.video_shift = video_shift
        self.kappa_exponent = kappa_exponent
        self.video_clean_prob = video_clean_prob
        self.text_clean_prob = text_clean_prob

    def lambda_for(self, transformer, video_latents: torch.Tensor, text_len: int) -> float:
        if self.lambda_text == "auto":
            return num_video_tokens(transformer, video_latents.shape) / text_len
        return float(self.lambda_text)

    def draw_clean(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Which samples are held clean: (video [B] bool, text [B] bool), never both for one sample."""
        clean_video = torch.zeros(batch, dtype=torch.bool)
        if self.video_clean_prob > 0:  # no draw otherwise: the paper's objective keeps its random stream
            clean_video = torch.rand(batch, generator=generator) < self.video_clean_prob
        clean_text = torch.zeros(batch, dtype=torch.bool)
        if self.text_clean_prob > 0:
            clean_text = (torch.rand(batch, generator=generator) < self.text_clean_prob) & ~clean_video
        return clean_video, clean_text

    def prepare(
        self,
        transformer,
        video_latents: torch.Tensor,  # [B, C, F, H, W] clean
        text_ids: torch.Tensor | None,  # [B, L] clean target ids (padded with the pad id); None: no text stream
        encoder_hidden_states: torch.Tensor,  # [B, L_c, text_dim]
        drop_text: torch.Tensor | None = None,  # [B] bool
        generator: torch.Generator | None = None,
        clean: tuple[torch.Tensor, torch.Tensor] | None = None,  # (video, text) [B] bool: draw_clean's
        video_weight: torch.Tensor | None = None,  # broadcastable to the latents: weights of the video loss
    ) -> tuple[dict, UniFlowTargets]:
        """The forward's keyword inputs and the loss's targets for one batch; every random draw is from ``generator``.

        ``transformer`` is read (its config and text flow), not called. With ``text_ids=None`` the inputs are the
        video's alone and the objective is plain video flow matching over every row. ``video_weight`` makes each
        sample's video loss a weighted mean over its latents (``VideoFlow.loss``)."""
        batch, device = video_latents.shape[0], video_latents.device

        # 1. Independent noise levels per sample and modality; the samples held clean
        sigma_v = sample_sigmas(batch, self.video_shift, generator).to(device)
        if text_ids is not None:
            flow = text_flow_for(transformer, self.kappa_exponent)
            if drop_text is None:
                drop_text = torch.zeros(batch, dtype=torch.bool, device=device)
            sigma_t = sample_sigmas(batch, 1.0, generator).to(device)
            clean_video, clean_text = (c.to(device) for c in clean or self.draw_clean(batch, generator))
            sigma_v = torch.where(clean_video, torch.zeros_like(sigma_v), sigma_v)
            sigma_t = torch.where(clean_text, torch.zeros_like(sigma_t), sigma_t)
        elif self.video_clean_prob or self.text_clean_prob or clean is not None:
            raise ValueError("holding rows clean needs a text stream: pass text_ids")

        # 2. Noisy video
        noise = torch.randn(video_latents.shape, generator=generator, dtype=video_latents.dtype).to(device)
        x_v = VideoFlow.add_noise(video_latents, noise, sigma_v)
        inputs = dict(
            video_latents=x_v, video_timestep=to_timestep(sigma_v), encoder_hidden_states=encoder_hidden_states
        )
        if text_ids is None:
            return inputs, UniFlowTargets(
                VideoFlow.target(video_latents, noise), None, None, None, 0.0, sigma_v, None, video_weight=video_weight
            )

        # 3. Noisy text; a dropped row is an empty text stream (all keys masked)
        inputs["text_timestep"] = to_timestep(sigma_t)
        if isinstance(flow, DiscreteTextFlow):
            x_t = flow.add_noise(text_ids, sigma_t, generator)
            x_t = torch.where(drop_text[:, None], torch.full_like(x_t, flow.pad_token_id), x_t)
            inputs.update(text_tokens=x_t, text_attention_mask=transformer.text_key_mask(x_t))
            text_target = text_ids
        else:
            x1 = flow.encode(text_ids)
            text_noise = torch.randn(x1.shape, generator=generator).to(device, x1.dtype)
            inputs["text_latents"] = flow.add_noise(x1, text_noise, sigma_t)
            inputs["text_attention_mask"] = (~drop_text)[:, None].expand(-1, text_ids.shape[1])
            text_target = flow.target(x1, text_noise)
        targets = UniFlowTargets(
            video=VideoFlow.target(video_latents, noise),
            text=text_target,
            video_rows=~clean_video,
            text_rows=~drop_text & ~clean_text,
            lambda_text=self.lambda_for(transformer, video_latents, text_ids.shape[1]),
            sigma_video=sigma_v,
            sigma_text=sigma_t,
            flow=flow,
            video_weight=video_weight,
        )
        return inputs, targets

    def loss(self, outputs, targets: UniFlowTargets) -> UniFlowLossOutput:
        """The loss of a forward's ``outputs`` (``video_velocity``; ``text_logits`` or ``text_velocity``)."""
        per_sample_video = VideoFlow.loss(outputs.video_velocity, targets.video, targets.video_weight)
        if targets.text is None:
            video_loss = per_sample_video.mean()
            zero = torch.zeros((), device=video_loss.device)
            return UniFlowLossOutput(video_loss, video_loss, zero, 0.0, targets.sigma_video, None)
        video_loss = _masked_mean(per_sample_video, targets.video_rows)
        if isinstance(targets.flow, DiscreteTextFlow):
            per_sample = targets.flow.loss(outputs.text_logits, targets.text)
        else:
            per_sample = targets.flow.loss(outputs.text_velocity, targets.text)
        text_loss = _masked_mean(per_sample, targets.text_rows)
        lam = targets.lambda_text
        return UniFlowLossOutput(
            video_loss + lam * text_loss, video_loss, text_loss, lam, targets.sigma_video, targets.sigma_text
        )

    def __call__(
        self,
        transformer,
        video_latents: torch.Tensor,
        text_ids: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        drop_text: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        clean: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> UniFlowLossOutput:
        """:meth:`prepare`, ``transformer(**inputs)``, :meth:`loss`: the arguments are :meth:`prepare`'s."""
        inputs, targets = self.prepare(
            transformer, video_latents, text_ids, encoder_hidden_states, drop_text, generator, clean
        )
        return self.loss(transformer(**inputs), targets)
