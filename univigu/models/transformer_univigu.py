"""The unified Uni-ViGU transformer: Wan2.1's video DiT with a text stream over the same attention.

One sequence ``[video; text]`` flows through every block. Self-attention, cross-attention and the
per-block modulation table are shared by both modalities; the feed-forward network is routed by
modality (``ffn`` = Wan's FFN_v for video tokens, ``ffn_t`` = FFN_t for text tokens). Video and
text carry independent timesteps, each with its own time embedder and output head.

Time convention (Wan's, used everywhere in this package): ``timestep = sigma * 1000`` where
``sigma = 1`` is pure noise and ``sigma = 0`` is clean data, for both modalities.

Every Wan-derived weight keeps the key it has in ``WanTransformer3DModel``, so a Wan state dict
loads into this model with only the text-stream keys missing.
"""

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, FeedForward
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.embeddings import (
    TimestepEmbedding,
    Timesteps,
    apply_rotary_emb,
    get_1d_rotary_pos_embed,
)
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanAttention,
    WanAttnProcessor,
    WanRotaryPosEmbed,
    WanTimeTextImageEmbedding,
    _get_qkv_projections,
)
from diffusers.utils import BaseOutput, apply_lora_scale

from .block_registry import register_block
from .video_context import VideoContext, VideoKV

TEXT_FORMULATIONS = ("discrete", "embedding")
TEXT_SOURCES = ("uniform", "mask")
POSITION_AXES = ("t", "h", "w")


def append_positions(latents: torch.Tensor, channels: int) -> torch.Tensor:
    """Latents [B, C, F, H, W] -> [B, C + channels, F, H, W] with the last ``channels`` of the (t, h, w)
    coordinates appended as constant maps, each running from -1 to 1 across the latent grid.

    Wan's only positional signal is RoPE, which is relative: a token can tell where it is only from how the
    frame's edges bound what it attends to, which a small model learns slowly, if at all, and "at the top left"
    needs it. Coordinate channels read by the patch embedding (like the extra input channels of Wan's
    image-to-video model) give every token its absolute place.
    """
    if channels == 0:
        return latents
    if not 0 < channels <= len(POSITION_AXES):
        raise ValueError(f"position channels must be 0..{len(POSITION_AXES)}, got {channels}")
    b, _, *grid = latents.shape
    axes = [torch.linspace(-1, 1, n, device=latents.device, dtype=latents.dtype) for n in grid]
    maps = torch.stack(torch.meshgrid(*axes, indexing="ij"))[-channels:]
    return torch.cat([latents, maps.unsqueeze(0).expand(b, -1, -1, -1, -1)], dim=1)


@dataclass
class UniViGUTransformerOutput(BaseOutput):
    """``video_velocity`` [B,C,F,H,W]; ``text_logits`` [B,L,V'] (discrete) or ``text_velocity`` [B,L,D_t]."""

    video_velocity: torch.Tensor | None
    text_logits: torch.Tensor | None = None
    text_velocity: torch.Tensor | None = None


class UniViGUAttnProcessor:
    """Joint self-attention over ``[video; text]``.

    Video queries/keys get Wan's interleaved 3-D RoPE, text queries/keys a 1-D rotate-half RoPE whose
    positions restart at 0; values are not rotated. ``attention_mask`` is a key mask [B,1,1,N_v+L]
    (True = attend).
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple | None = None,
        video_kv: VideoKV | None = None,
    ) -> torch.Tensor:
        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        query = attn.norm_q(query).unflatten(2, (attn.heads, -1))  # [B, N, H, hd]
        key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))

        video_rope, text_rope = rotary_emb if rotary_emb is not None else (None, None)
        if video_rope is not None:
            num_video = video_rope[0].shape[0]
            query = _rotate_joint(query, num_video, video_rope, text_rope)
            key = _rotate_joint(key, num_video, video_rope, text_rope)
            if video_kv is not None:  # record the clip's context (VideoContext)
                video_kv.key, video_kv.value = key[:, :num_video], value[:, :num_video]
        elif video_kv is not None:  # text tokens only: attend to [cached video K/V; text K/V]
            if text_rope is not None:
                query = apply_rotary_emb(query, text_rope, use_real_unbind_dim=-2, sequence_dim=1)
                key = apply_rotary_emb(key, text_rope, use_real_unbind_dim=-2, sequence_dim=1)
            key = torch.cat([video_kv.key, key], dim=1)
            value = torch.cat([video_kv.value, value], dim=1)

        out = dispatch_attention_fn(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=0.0,
            is_causal=False,
            backend=self._attention_backend,
            parallel_config=None,
        )
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def _rotate_joint(x: torch.Tensor, num_video: int, video_rope, text_rope) -> torch.Tensor:
    """RoPE on [B, N_v + L, H, hd]: interleaved pairs for video, rotate-half for text."""
    video = apply_rotary_emb(x[:, :num_video], video_rope, use_real_unbind_dim=-1, sequence_dim=1)
    text = apply_rotary_emb(x[:, num_video:], text_rope, use_real_unbind_dim=-2, sequence_dim=1)
    return torch.cat([video, text], dim=1)


def _sinusoid_float64(timestep: torch.Tensor, channels: int) -> torch.Tensor:
    """``Timesteps(channels, flip_sin_to_cos=True, downscale_freq_shift=0)``: the same fp32 exponents and angles,
    with exp, cos and sin evaluated in float64 and rounded once, so every machine gets the same fp32 values."""
    half = channels // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half
    angles = timestep.float()[:, None] * torch.exp(exponent.double()).float()[None]
    return torch.cat([torch.cos(angles.double()), torch.sin(angles.double())], dim=-1).float()


class TextTimeEmbedding(nn.Module):
    """The text stream's own time embedder, laid out like Wan's ``condition_embedder`` time part."""

    def __init__(self, dim: int, time_freq_dim: int, time_proj_dim: int):
        super().__init__()
        self.timesteps_proj = Timesteps(num_channels=time_freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedder = TimestepEmbedding(in_channels=time_freq_dim, time_embed_dim=dim)
        self.act_fn = nn.SiLU()
        self.time_proj = nn.Linear(dim, time_proj_dim)


class UniViGUBlock(nn.Module):
    """A Wan block whose attention and modulation are shared by video and text, with FFN_t for text."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, cross_attn_norm: bool, eps: float):
        super().__init__()
        # Same modules and names as diffusers' WanTransformerBlock, so Wan keys load unchanged.
        self.norm1 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.attn1 = WanAttention(dim, num_heads, dim // num_heads, eps, processor=UniViGUAttnProcessor())
        self.attn2 = WanAttention(
            dim,
            num_heads,
            dim // num_heads,
            eps,
            cross_attention_dim_head=dim // num_heads,
            processor=WanAttnProcessor(),
        )
        self.norm2 = FP32LayerNorm(dim, eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.ffn = FeedForward(dim, inner_dim=ffn_dim, activation_fn="gelu-approximate")
        self.norm3 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        # The modality-driven part: text tokens get their own FFN.
        self.ffn_t = FeedForward(dim, inner_dim=ffn_dim, activation_fn="gelu-approximate")
        self.norm3_t = FP32LayerNorm(dim, eps, elementwise_affine=False)

    def forward(
        self,
        video: torch.Tensor | None,  # [B, N_v, D]; None: text tokens only, on the cached video_kv
        text: torch.Tensor,  # [B, L, D]
        encoder_hidden_states: torch.Tensor,  # [B, L_c, D]
        temb_video: torch.Tensor | None,  # [B, 6, D]
        temb_text: torch.Tensor,  # [B, 6, D]
        rotary_emb: tuple,
        attention_mask: torch.Tensor | None,
        video_kv: VideoKV | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        if video is None:
            text = self._forward_text(text, encoder_hidden_states, temb_text, rotary_emb, attention_mask, video_kv)
            return None, text
        num_video = video.shape[1]
        shift_v, scale_v, gate_v, c_shift_v, c_scale_v, c_gate_v = (self.scale_shift_table + temb_video.float()).chunk(
            6, 1
        )
        shift_t, scale_t, gate_t, c_shift_t, c_scale_t, c_gate_t = (self.scale_shift_table + temb_text.float()).chunk(
            6, 1
        )

        # 1. Joint self-attention over [video; text]
        norm_v = (self.norm1(video.float()) * (1 + scale_v) + shift_v).type_as(video)
        norm_t = (self.norm1(text.float()) * (1 + scale_t) + shift_t).type_as(text)
        attn_out = self.attn1(torch.cat([norm_v, norm_t], dim=1), None, attention_mask, rotary_emb, video_kv=video_kv)
        video = (video.float() + attn_out[:, :num_video] * gate_v).type_as(video)
        text = (text.float() + attn_out[:, num_video:] * gate_t).type_as(text)

        # 2. Shared cross-attention to the prompt (ungated, unmasked, no RoPE)
        hidden = torch.cat([video, text], dim=1)
        hidden = hidden + self.attn2(self.norm2(hidden.float()).type_as(hidden), encoder_hidden_states, None, None)
        video, text = hidden[:, :num_video], hidden[:, num_video:]

        # 3. Feed-forward routed by modality
        norm_v = (self.norm3(video.float()) * (1 + c_scale_v) + c_shift_v).type_as(video)
        video = (video.float() + self.ffn(norm_v).float() * c_gate_v).type_as(video)
        norm_t = (self.norm3_t(text.float()) * (1 + c_scale_t) + c_shift_t).type_as(text)
        text = (text.float() + self.ffn_t(norm_t).float() * c_gate_t).type_as(text)
        return video, text

    def _forward_text(self, text, encoder_hidden_states, temb_text, rotary_emb, attention_mask, video_kv):
        """The text rows of :meth:`forward` on a cached clip: every op but self-attention is per token, and there
        the text queries read the video keys and values ``video_kv`` recorded by a full forward."""
        if video_kv is None or video_kv.key is None:
            raise ValueError("a text-only block forward needs the video keys and values of a full forward")
        shift_t, scale_t, gate_t, c_shift_t, c_scale_t, c_gate_t = (self.scale_shift_table + temb_text.float()).chunk(
            6, 1
        )
        norm_t = (self.norm1(text.float()) * (1 + scale_t) + shift_t).type_as(text)
        attn_out = self.attn1(norm_t, None, attention_mask, (None, rotary_emb[1]), video_kv=video_kv)
        text = (text.float() + attn_out * gate_t).type_as(text)
        text = text + self.attn2(self.norm2(text.float()).type_as(text), encoder_hidden_states, None, None)
        norm_t = (self.norm3_t(text.float()) * (1 + c_scale_t) + c_shift_t).type_as(text)
        return (text.float() + self.ffn_t(norm_t).float() * c_gate_t).type_as(text)


class UniViGUTransformer(ModelMixin, ConfigMixin, PeftAdapterMixin, AttentionMixin, CacheMixin):
    r"""Uni-ViGU's unified video-and-text diffusion transformer, composed from Wan2.1's modules.

    The first group of arguments are ``WanTransformer3DModel``'s (no image branch). The text stream:

    Args:
        text_formulation: ``"discrete"`` (token ids in, logits out; discrete flow matching) or
            ``"embedding"`` (token-embedding latents in, velocity out; continuous flow, nearest-embedding decoding).
        vocab_size: number of real token ids (the tokenizer's).
        text_source: discrete source distribution, ``"uniform"`` or ``"mask"``; with ``"mask"`` the
            embedding and head get one extra row and the mask id is ``vocab_size``.
        pad_token_id: id of the padding token (discrete: a position holding it is masked as a key).
        text_latent_dim: width of the embedding-formulation latents.
        max_text_len: length of the text stream the model was trained with.
        time_embedding_rounding: ``"bfloat16"`` rounds the time embedding like the authors' release
            (needed for bit-level parity with their checkpoints), ``None`` keeps float32.
        position_channels: coordinate maps appended to the ``in_channels`` latent channels before the patch
            embedding (:func:`append_positions`); 0 for Wan2.1 (the bundled ShapesWorld model uses 3).
    """

    _supports_gradient_checkpointing = True
    _skip_layerwise_casting_patterns = [
        "patch_embedding",
        "condition_embedder",
        "text_time_embedder",
        "text_embedding",
        "norm",
        "scale_shift_table",
    ]
    _no_split_modules = ["UniViGUBlock"]
    _keep_in_fp32_modules = ["time_embedder", "scale_shift_table", "norm1", "norm2", "norm3", "text_norm_out"]
    _repeated_blocks = ["UniViGUBlock"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        text_formulation: str = "discrete",
        vocab_size: int = 256384,
        text_source: str = "mask",
        pad_token_id: int = 0,
        text_latent_dim: int = 64,
        max_text_len: int = 256,
        time_embedding_rounding: str | None = None,
        position_channels: int = 0,
    ) -> None:
        super().__init__()
        if text_formulation not in TEXT_FORMULATIONS:
            raise ValueError(f"text_formulation must be one of {TEXT_FORMULATIONS}, got {text_formulation!r}")
        if text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}")
        if qk_norm != "rms_norm_across_heads":
            raise ValueError("UniViGU follows Wan2.1: qk_norm must be 'rms_norm_across_heads'")
        if time_embedding_rounding not in (None, "bfloat16"):
            raise ValueError("time_embedding_rounding must be None or 'bfloat16'")
        if not 0 <= position_channels <= len(POSITION_AXES):
            raise ValueError(f"position_channels must be 0..{len(POSITION_AXES)}, got {position_channels}")
        inner_dim = num_attention_heads * attention_head_dim
        out_channels = out_channels or in_channels

        # 1. Video patches and positions (Wan's modules)
        self.rope = WanRotaryPosEmbed(attention_head_dim, patch_size, rope_max_seq_len)
        self.patch_embedding = nn.Conv3d(
            in_channels + position_channels, inner_dim, kernel_size=patch_size, stride=patch_size
        )

        # 2. Conditions: Wan's video-time + prompt embedder, and the text stream's own time embedder
        self.condition_embedder = WanTimeTextImageEmbedding(inner_dim, freq_dim, inner_dim * 6, text_dim)
        self.text_time_embedder = TextTimeEmbedding(inner_dim, freq_dim, inner_dim * 6)

        # 3. Text stream input
        if text_formulation == "discrete":
            self.text_embedding = nn.Embedding(self.num_text_classes, inner_dim)
        else:
            # A fixed codebook: the flow's clean points and the nearest-embedding decoder (paper eq. 7-8).
            self.register_buffer("token_embeddings", torch.randn(vocab_size, text_latent_dim))
            self.text_proj_in = nn.Linear(text_latent_dim, inner_dim)

        # 4. Blocks
        self.blocks = nn.ModuleList(
            [UniViGUBlock(inner_dim, ffn_dim, num_attention_heads, cross_attn_norm, eps) for _ in range(num_layers)]
        )

        # 5. Heads: Wan's video head, and a text head with its own modulation table
        self.norm_out = FP32LayerNorm(inner_dim, eps, elementwise_affine=False)
        self.proj_out = nn.Linear(inner_dim, out_channels * patch_size[0] * patch_size[1] * patch_size[2])
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, inner_dim) / inner_dim**0.5)
        self.text_norm_out = FP32LayerNorm(inner_dim, 1e-5, elementwise_affine=True, bias=False)
        text_out = self.num_text_classes if text_formulation == "discrete" else text_latent_dim
        self.text_proj_out = nn.Linear(inner_dim, text_out)
        self.text_scale_shift_table = nn.Parameter(torch.randn(1, 2, inner_dim) / inner_dim**0.5)

        self.gradient_checkpointing = False

    # ----------------------------------------------------------------------------------------------
    @property
    def num_text_classes(self) -> int:
        """Rows of the text embedding / head: the vocabulary, plus the mask token with a mask source."""
        return self.config.vocab_size + (1 if self.config.text_source == "mask" else 0)

    @property
    def mask_token_id(self) -> int | None:
        return self.config.vocab_size if self.config.text_source == "mask" else None

    def text_key_mask(self, text_tokens: torch.Tensor) -> torch.Tensor:
        """Key mask [B,L] for a discrete text state: positions holding the pad token are not attended to."""
        return text_tokens != self.config.pad_token_id

    def _embed_time(self, embedder: nn.Module, timestep: torch.Tensor, batch: int, dtype: torch.dtype):
        """Sinusoid -> MLP -> (temb [B,D], proj [B,6,D]), optionally rounding temb like the authors' code."""
        timestep = torch.as_tensor(timestep, device=self.device).float().reshape(-1)
        if timestep.numel() == 1:
            timestep = timestep.expand(batch)
        if timestep.numel() != batch:
            raise ValueError(f"expected one timestep per sample ({batch}), got {timestep.numel()}")
        if self.config.time_embedding_rounding == "bfloat16" and timestep.device.type != "mps":
            # The bf16 rounding below turns an ulp of difference in the sinusoid into a whole bf16 step, and fp32
            # exp/sin/cos differ by an ulp between CPU instruction sets: correctly rounded values are portable.
            freqs = _sinusoid_float64(timestep, embedder.timesteps_proj.num_channels)
        else:
            freqs = embedder.timesteps_proj(timestep)
        freqs = freqs.to(next(embedder.time_embedder.parameters()).dtype)
        temb = embedder.time_embedder(freqs).to(dtype)
        if self.config.time_embedding_rounding == "bfloat16":
            temb = temb.to(torch.bfloat16)
            proj = embedder.time_proj(embedder.act_fn(temb).to(dtype))
            temb = temb.to(dtype)
        else:
            proj = embedder.time_proj(embedder.act_fn(temb))
        return temb, proj.unflatten(1, (6, -1))

    def _check_inputs(self, video_latents, text_tokens, text_latents, encoder_hidden_states, text_attention_mask):
        cfg = self.config
        if video_latents is not None:  # None: a text-only forward on a cached clip (VideoContext)
            if video_latents.ndim != 5 or video_latents.shape[1] != cfg.in_channels:
                raise ValueError(f"video_latents must be [B,{cfg.in_channels},F,H,W], got {tuple(video_latents.shape)}")
            _, _, f, h, w = video_latents.shape
            p_t, p_h, p_w = cfg.patch_size
            if f % p_t or h % p_h or w % p_w:
                raise ValueError(f"latent grid {(f, h, w)} is not divisible by the patch size {tuple(cfg.patch_size)}")
        if cfg.text_formulation == "discrete":
            if text_tokens is None or text_latents is not None:
                raise ValueError("the discrete text formulation takes text_tokens [B,L] (int), not text_latents")
            if text_tokens.ndim != 2 or text_tokens.dtype not in (torch.int64, torch.int32):
                raise ValueError(
                    f"text_tokens must be an integer tensor [B,L], got {text_tokens.dtype} {tuple(text_tokens.shape)}"
                )
            text = text_tokens
        else:
            if text_latents is None or text_tokens is not None:
                raise ValueError("the embedding text formulation takes text_latents [B,L,D_t], not text_tokens")
            if text_latents.ndim != 3 or text_latents.shape[-1] != cfg.text_latent_dim:
                raise ValueError(f"text_latents must be [B,L,{cfg.text_latent_dim}], got {tuple(text_latents.shape)}")
            text = text_latents
        batch = video_latents.shape[0] if video_latents is not None else text.shape[0]
        if text.shape[0] != batch:
            raise ValueError(f"video batch {batch} and text batch {text.shape[0]} differ")
        if (
            encoder_hidden_states.ndim != 3
            or encoder_hidden_states.shape[0] != batch
            or encoder_hidden_states.shape[-1] != cfg.text_dim
        ):
            raise ValueError(
                f"encoder_hidden_states must be [{batch},L_c,{cfg.text_dim}], got {tuple(encoder_hidden_states.shape)}"
            )
        if text_attention_mask is not None and tuple(text_attention_mask.shape) != tuple(text.shape[:2]):
            raise ValueError(
                f"text_attention_mask must be {tuple(text.shape[:2])}, got {tuple(text_attention_mask.shape)}"
            )

    def enable_cache(self, config) -> None:
        """diffusers' ``CacheMixin.enable_cache``, with :class:`UniViGUBlock` registered for the block caches."""
        register_block(UniViGUBlock)
        super().enable_cache(config)

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        video_latents: torch.Tensor | None,
        video_timestep: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        text_timestep: torch.Tensor,
        text_tokens: torch.Tensor | None = None,
        text_latents: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
        video_context: VideoContext | None = None,
    ) -> UniViGUTransformerOutput | tuple:
        """Predict the video velocity and the text stream's output in one pass.

        Args:
            video_latents: [B, C, F, H, W] noisy VAE latents at ``video_timestep``.
            video_timestep, text_timestep: [B] (or scalars) in 0..1000, 1000 = pure noise; independent.
            encoder_hidden_states: [B, L_c, text_dim] prompt embeddings (UMT5), cross-attended by all tokens.
            text_tokens: [B, L] ids (discrete) — or ``text_latents`` [B, L, text_latent_dim] (embedding).
            text_attention_mask: [B, L] bool, True = real token; masked positions are not attended to.
            attention_kwargs: ``{"scale": s}`` scales loaded LoRA adapters (diffusers' convention, as in Wan).
            video_context: with ``video_latents``, record each block's video keys and values into it; with
                ``video_latents=None``, run only the text tokens on the clip it holds (``video_velocity`` is
                then ``None``): :class:`VideoContext`.
        """
        text_only = video_latents is None
        if text_only and (video_context is None or not video_context.filled):
            raise ValueError("video_latents=None runs the text tokens only: pass a video_context a full forward filled")
        self._check_inputs(video_latents, text_tokens, text_latents, encoder_hidden_states, text_attention_mask)

        # 1. Video tokens [B, N_v, D] and 3-D RoPE (or the clip's cached context); text tokens [B, L, D], 1-D RoPE
        if text_only:
            batch, dtype, num_video = video_context.batch, video_context.dtype, video_context.num_video
            video = video_rope = None
            if len(encoder_hidden_states) != batch:
                raise ValueError(f"the video context holds {batch} rows, the text {len(encoder_hidden_states)}")
        else:
            batch, _, num_frames, height, width = video_latents.shape
            p_t, p_h, p_w = self.config.patch_size
            grid = (num_frames // p_t, height // p_h, width // p_w)
            freqs_cos, freqs_sin = self.rope(video_latents)
            video_rope = (freqs_cos[0, :, 0], freqs_sin[0, :, 0])  # [N_v, hd] each
            video = append_positions(video_latents, self.config.position_channels)
            video = self.patch_embedding(video).flatten(2).transpose(1, 2).contiguous()
            dtype, num_video = video.dtype, video.shape[1]
        if self.config.text_formulation == "discrete":
            text = self.text_embedding(text_tokens)
        else:
            text = self.text_proj_in(text_latents.to(self.text_proj_in.weight.dtype))
        text = text.to(dtype)
        text_rope = get_1d_rotary_pos_embed(
            self.config.attention_head_dim, text.shape[1], theta=10000.0, use_real=True, repeat_interleave_real=False
        )
        text_rope = tuple(r.to(text.device) for r in text_rope)

        # 2. Independent time embeddings and the prompt condition
        temb_v = proj_v = None
        if not text_only:
            temb_v, proj_v = self._embed_time(self.condition_embedder, video_timestep, batch, dtype)
        temb_t, proj_t = self._embed_time(self.text_time_embedder, text_timestep, batch, dtype)
        cond = self.condition_embedder.text_embedder(encoder_hidden_states.to(dtype))

        # 3. Key mask over [video; text]: [B, 1, 1, N_v + L]
        attention_mask = None
        if text_attention_mask is not None:
            video_keep = torch.ones(batch, num_video, dtype=torch.bool, device=text.device)
            attention_mask = torch.cat([video_keep, text_attention_mask.to(text.device).bool()], dim=1)[
                :, None, None, :
            ]

        # 4. Blocks (recording each one's video keys and values into a video_context given with the clip)
        rotary_emb = (video_rope, text_rope)
        if video_context is not None and not text_only:
            video_context.layers, video_context.dtype = [VideoKV() for _ in self.blocks], dtype
        slots = video_context.layers if video_context is not None else [None] * len(self.blocks)
        for block, video_kv in zip(self.blocks, slots):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                video, text = self._gradient_checkpointing_func(
                    block, video, text, cond, proj_v, proj_t, rotary_emb, attention_mask, video_kv
                )
            else:
                video, text = block(video, text, cond, proj_v, proj_t, rotary_emb, attention_mask, video_kv)

        # 5. Video head (Wan's) and unpatchify: [B, N_v, p*C] -> [B, C, F, H, W]; not computed on a cached clip
        video_velocity = None
        if not text_only:
            shift, scale = (self.scale_shift_table.to(temb_v.device) + temb_v.unsqueeze(1)).chunk(2, dim=1)
            video = (self.norm_out(video.float()) * (1 + scale) + shift).type_as(video)
            video = self.proj_out(video).reshape(batch, *grid, p_t, p_h, p_w, -1)
            video_velocity = video.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)

        # 6. Text head
        shift, scale = (self.text_scale_shift_table.to(temb_t.device) + temb_t.unsqueeze(1)).chunk(2, dim=1)
        text = (self.text_norm_out(text.float()) * (1 + scale) + shift).type_as(text)
        text_out = self.text_proj_out(text)

        if not return_dict:
            return video_velocity, text_out
        if self.config.text_formulation == "discrete":
            return UniViGUTransformerOutput(video_velocity=video_velocity, text_logits=text_out)
        return UniViGUTransformerOutput(video_velocity=video_velocity, text_velocity=text_out)

    # ----------------------------------------------------------------------------------------------
    WAN_CONFIG_KEYS = (
        "patch_size",
        "num_attention_heads",
        "attention_head_dim",
        "in_channels",
        "out_channels",
        "text_dim",
        "freq_dim",
        "ffn_dim",
        "num_layers",
        "cross_attn_norm",
        "qk_norm",
        "eps",
        "rope_max_seq_len",
    )

    @staticmethod
    def is_text_own(name: str) -> bool:
        """Whether a parameter or buffer name is the text stream's own (its embedding, time embedder, head and
        FFN_t) rather than one of the Wan weights that video and text share."""
        return name.startswith(("text_", "token_embeddings")) or ".ffn_t." in name

    @classmethod
    def from_wan(cls, wan, ffn_t_init: str = "copy", position_channels: int = 0, **text_config) -> "UniViGUTransformer":
        """A UniViGU transformer holding a ``WanTransformer3DModel``'s weights, ready for Stage 1.

        FFN_v, attention, modulation, the video time embedder and the video head are Wan's. As in the
        authors' release, the text time embedder and the text head's table start as copies of the video
        ones and the text head's projection starts at zero. ``ffn_t_init="copy"`` copies FFN_v into FFN_t
        (the release); ``"random"`` keeps FFN_t freshly initialised (the paper).
        """
        if ffn_t_init not in ("copy", "random"):
            raise ValueError(f"ffn_t_init must be 'copy' or 'random', got {ffn_t_init!r}")
        wan_cfg = wan.config
        if wan_cfg.get("image_dim") is not None or wan_cfg.get("added_kv_proj_dim") is not None:
            raise ValueError("UniViGU builds on Wan2.1 text-to-video; image-conditioned Wan models are not supported")
        config = {k: wan_cfg[k] for k in cls.WAN_CONFIG_KEYS}
        config["out_channels"] = config["out_channels"] or config["in_channels"]
        if config["in_channels"] != config["out_channels"] + position_channels:
            raise ValueError(
                f"a Wan model with {config['in_channels']} input and {config['out_channels']} output channels "
                f"does not hold {position_channels} position channels (input = output + position channels)"
            )
        config["in_channels"] -= position_channels
        model = cls(**config, position_channels=position_channels, **text_config)
        if wan.dtype != model.dtype:
            model.to(dtype=wan.dtype)
        missing, unexpected = model.load_state_dict(wan.state_dict(), strict=False)
        if unexpected:
            raise ValueError(f"Wan weights with no place in UniViGU: {unexpected[:5]}")
        wan_born = [k for k in missing if not cls.is_text_own(k)]
        if wan_born:
            raise ValueError(f"UniViGU weights Wan did not provide: {wan_born[:5]}")
        with torch.no_grad():
            model.text_time_embedder.load_state_dict(
                {
                    k: v
                    for k, v in model.condition_embedder.state_dict().items()
                    if k.startswith(("time_", "timesteps_"))
                }
            )
            model.text_scale_shift_table.copy_(model.scale_shift_table)
            model.text_proj_out.weight.zero_()
            model.text_proj_out.bias.zero_()
            if ffn_t_init == "copy":
                for block in model.blocks:
                    block.ffn_t.load_state_dict(block.ffn.state_dict())
        return model
