"""The frozen parts of the bundled model (word tokenizer, small UMT5, Wan VAE) and the pipeline folder.

    python -m training.components build --data runs/data/train --out runs/components [--vae-steps N ...]
    python -m training.components assemble --components runs/components --transformer runs/refine/final \
        --out assets/univigu-shapesworld --shift 3.0 [--base runs/base/final --alpha 0.75]
    python -m training.components grow --transformer runs/base/final --out runs/grown --extra-layers 2 \
        --components runs/components

``build`` writes ``tokenizer/``, ``text_encoder/`` and ``vae/`` in the diffusers pipeline layout:

- tokenizer: :func:`univigu.tokenization.build_word_tokenizer` over the ShapesWorld vocabulary, shared by
  the text encoder and the transformer's text stream.
- text encoder: a 2-layer UMT5 (d_model 64) pretrained for a minute with masked-word prediction on the
  dataset's prompts and captions, so its outputs carry each word's context (which colour goes with which
  shape) rather than random features. Frozen afterwards, as Wan freezes its UMT5.
- VAE: a per-frame ``AutoencoderKLWan`` (4x spatial, no temporal compression; base_dim 16, z_dim 8; see
  :func:`build_vae`) trained on the dataset's frames with an object-weighted L1 + MSE reconstruction loss
  and a small KL term, then (``--vae-temporal-steps`` > 0) turned into Wan's 4x temporally compressing VAE
  (:func:`temporal_from_per_frame`) and fine-tuned on whole clips; ``latents_mean/std`` in its config come
  from the data, so the transformer sees unit-scale latents. The report holds the detector's accuracy on
  its reconstructions: the ceiling for text-to-video.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

from univigu.models import UniViGUTransformer
from univigu.pipeline_univigu import UniViGUPipeline
from univigu.tokenization import build_word_tokenizer

from .sampling import position_channels
from .shapesworld import FPS, HEIGHT, NUM_FRAMES, VOCABULARY, WIDTH

MAX_TEXT_LEN = 32  # the longest ShapesWorld caption is 27 words + </s>


def build_tokenizer(max_len: int = MAX_TEXT_LEN):
    return build_word_tokenizer(VOCABULARY, model_max_length=max_len)


def build_text_encoder(
    vocab_size: int, d_model: int = 64, num_layers: int = 2, num_heads: int = 4
) -> UMT5EncoderModel:
    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=2 * d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=16,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
    )
    return UMT5EncoderModel(config)


def build_vae(base_dim: int = 16, z_dim: int = 8) -> AutoencoderKLWan:
    """A per-frame Wan VAE with 4x spatial compression: 17x64x64 clips -> [z_dim, 17, 16, 16] latents.

    No temporal downsampling, and every causal convolution's kernel slices over past frames start (and,
    trained on single frames, stay) at zero: each frame is encoded and decoded on its own, so the VAE can be
    trained as an image autoencoder -- 17x cheaper per sample than on clips, which is what makes it learn
    the objects within minutes on a CPU. The price is 17 latent frames: with (1, 4, 4) patches the
    transformer would see 17 x 4 x 4 = 272 video tokens, which :func:`temporal_from_per_frame` cuts to 80
    (a patch of 8 x 16 = 128 values needs a hidden size of at least 128: ``training.train`` refuses smaller
    ones).
    """
    vae = AutoencoderKLWan(
        base_dim=base_dim,
        z_dim=z_dim,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, False],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
        scale_factor_temporal=1,
        scale_factor_spatial=4,
    )
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, WanCausalConv3d) and module.weight.shape[2] > 1:
                module.weight[:, :, :-1] = 0
    return vae


def temporal_from_per_frame(per_frame: AutoencoderKLWan) -> AutoencoderKLWan:
    """Wan's 4x temporally compressing VAE (17 frames -> 5 latent frames) from a trained per-frame one.

    Every weight is copied; the only new ones, the resamplers' temporal convolutions, start as "keep the
    newest frame" (downsampling) and "repeat the frame" (upsampling), so before any fine-tuning the VAE
    encodes every fourth frame and decodes each latent frame as four copies of it. With (1, 4, 4) patches
    the transformer then sees 5 x 4 x 4 = 80 video tokens instead of 272.
    """
    cfg = per_frame.config
    if any(cfg.temperal_downsample) or len(cfg.temperal_downsample) != 2:
        raise ValueError(f"expected a per-frame VAE with two spatial downsamplings, got {cfg.temperal_downsample}")
    vae = AutoencoderKLWan(
        base_dim=cfg.base_dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        temperal_downsample=[True, True],
        latents_mean=list(cfg.latents_mean),
        latents_std=list(cfg.latents_std),
        scale_factor_temporal=4,
        scale_factor_spatial=cfg.scale_factor_spatial,
    )
    missing, unexpected = vae.load_state_dict(per_frame.state_dict(), strict=False)
    if unexpected or any("time_conv" not in name for name in missing):
        raise ValueError(f"per-frame VAE weights do not fit: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, WanResample) and hasattr(module, "time_conv"):
                weight = module.time_conv.weight  # [copies * dim, dim, 3, 1, 1]
                weight.zero_()
                module.time_conv.bias.zero_()
                dim = weight.shape[1]
                for k in range(weight.shape[0] // dim):
                    weight[k * dim : (k + 1) * dim, :, -1, 0, 0] = torch.eye(dim)
    return vae


# -------------------------------------------------------------------------------------------------
# Text encoder pretraining: masked-word prediction
def pretrain_text_encoder(
    encoder: UMT5EncoderModel,
    tokenizer,
    texts: list[str],
    steps: int = 400,
    batch_size: int = 64,
    lr: float = 3e-3,
    mask_prob: float = 0.3,
    seed: int = 0,
    context: int = 0,
) -> list[float]:
    """Train ``encoder`` in place to predict masked words (``<unk>`` is the mask); returns the losses.

    ``context > 0`` adds two self-supervised tasks at every real position: name the words ``context`` places
    before and after it, and its own place in the sentence. Wan's cross-attention reads the prompt as a set
    of feature vectors with no order, so a feature must carry its context itself: with masked words alone a
    small encoder gives "left" in "at the top left" and in "moves left" nearly the same vector (cosine 0.95),
    and "at the top left moves right" the same set as "at the top right moves left".
    """
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids, attn = enc.input_ids, enc.attention_mask
    length, d_model, vocab = ids.shape[1], encoder.config.d_model, len(tokenizer)
    offsets = [o for o in range(-context, context + 1) if o != 0]
    head = torch.nn.Linear(d_model, vocab)
    params = list(encoder.parameters()) + list(head.parameters())
    if offsets:
        with torch.random.fork_rng():  # what is built after the text encoder does not depend on ``context``
            context_head = torch.nn.Linear(d_model, vocab * len(offsets) + length)
        params += list(context_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    # Targets for the context tasks: the word at each offset (the pad id past either end) and the position
    padded = F.pad(ids, (context, context), value=tokenizer.pad_token_id)
    neighbours = [padded[:, context + o : context + o + length] for o in offsets]
    neighbours = torch.stack(neighbours, -1) if offsets else None  # [N, L, 2 * context]
    losses = []
    encoder.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, len(ids), (batch_size,), generator=gen)
        x, a = ids[idx], attn[idx]
        masked = (torch.rand(x.shape, generator=gen) < mask_prob) & a.bool()
        inputs = torch.where(masked, torch.full_like(x, tokenizer.unk_token_id), x)
        hidden = encoder(inputs, attention_mask=a).last_hidden_state
        loss = F.cross_entropy(head(hidden)[masked], x[masked])
        if offsets:
            real = a.bool()
            out = context_head(hidden[real])
            words = out[:, : vocab * len(offsets)].reshape(-1, len(offsets), vocab)
            place = torch.arange(length).expand_as(x)[real]
            loss = loss + F.cross_entropy(words.flatten(0, 1), neighbours[idx][real].flatten())
            loss = loss + F.cross_entropy(out[:, vocab * len(offsets) :], place)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    encoder.eval().requires_grad_(False)
    return losses


# -------------------------------------------------------------------------------------------------
# VAE
def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [..., F, H, W, 3] -> float [..., 3, F, H, W] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(frames)).float() / 127.5 - 1.0
    return x.movedim(-1, -4)


def _decode_unclamped(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    # AutoencoderKLWan._decode without its final clamp to [-1, 1]: a clamped pixel has no gradient, and
    # once a spike pushes the decoder past the range, training stalls there. Same frame loop otherwise.
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    frames = []
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        frames.append(
            vae.decoder(
                x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0
            )
        )
    vae.clear_cache()
    return torch.cat(frames, 2)


def _crop(clip: torch.Tensor, crop: int, grid: int, object_crops: float, gen: torch.Generator) -> torch.Tensor:
    """A ``crop`` x ``crop`` window of a uint8 clip [F, H, W, 3] starting on the latent grid.

    With probability ``object_crops`` the window is centred (up to the grid) on a random pixel unlike the
    background, so most crops hold part of an object; otherwise it is placed uniformly.
    """
    _, height, width, _ = clip.shape
    fg = (clip.int() - clip.flatten(0, 2).median(dim=0).values.int()).abs().sum(-1) > 20
    ys, xs = fg.any(0).nonzero(as_tuple=True)
    if len(ys) and float(torch.rand((), generator=gen)) < object_crops:
        k = int(torch.randint(0, len(ys), (1,), generator=gen))
        y0, x0 = (int(c) - crop // 2 for c in (ys[k], xs[k]))
    else:
        y0, x0 = (int(torch.randint(0, s - crop + 1, (1,), generator=gen)) for s in (height, width))
    y0, x0 = (grid * round(max(0, min(c, s - crop)) / grid) for c, s in ((y0, height), (x0, width)))
    return clip[:, y0 : y0 + crop, x0 : x0 + crop]


def train_vae(
    vae: AutoencoderKLWan,
    clips: torch.Tensor,
    steps: int = 1500,
    batch_size: int = 32,
    window: int = 1,
    crop: int = 32,
    lr: float = 1e-3,
    kl_weight: float = 1e-5,
    fg_weight: float = 10.0,
    warmup: int = 30,
    object_crops: float = 0.8,
    seed: int = 0,
    log=print,
) -> list[float]:
    """Train ``vae`` in place on uint8 clips [N, F, H, W, 3] with random ``window``-frame, ``crop``-px crops.

    The VAE is convolutional, so 32x32 crops (a quarter of the cost of whole frames) teach it the same
    colours and edges; crops start on the latent grid. Objects cover a few percent of a ShapesWorld frame and
    an autoencoder learns the background first and the objects much later, so by default most crops are
    centred on an object (``object_crops``) and pixels unlike the clip's background (its per-channel median)
    weigh 1 + ``fg_weight``. ``window`` = 1 trains on single frames (enough for :func:`build_vae`'s per-frame
    VAE); a temporally compressing VAE needs whole clips, since on short windows its causal cache drifts.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    losses, start = [], time.time()
    vae.train()
    num_frames = clips.shape[1]
    grid = vae.config.scale_factor_spatial
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = (
                lr
                * min(1.0, (step + 1) / warmup)
                * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
            )
        idx = torch.randint(0, len(clips), (batch_size,), generator=gen)
        t0 = int(torch.randint(0, num_frames - window + 1, (1,), generator=gen))
        crops = [_crop(clips[i, t0 : t0 + window], crop, grid, object_crops, gen) for i in idx.tolist()]
        x = frames_to_tensor(torch.stack(crops))
        posterior = vae.encode(x).latent_dist
        # Decode the mean, not a sample: with a tiny KL weight the posterior's unit-variance noise at
        # initialisation would drown the latents and leave the decoder predicting blur.
        recon = _decode_unclamped(vae, posterior.mean)
        err = (recon - x).abs() + (recon - x).pow(2)
        if fg_weight > 0:
            background = x.flatten(2).median(dim=2).values[:, :, None, None, None]
            foreground = ((x - background).abs().sum(1, keepdim=True) > 0.1).float()
            weight = 1 + fg_weight * foreground
            rec = (err * weight).sum() / (weight.sum() * x.shape[1])
        else:
            rec = err.mean()
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1 - posterior.logvar).mean()
        loss = rec + kl_weight * kl
        if not torch.isfinite(loss):
            raise FloatingPointError(f"VAE loss is {float(loss)} at step {step}; lower --vae-lr")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 0.5)
        opt.step()
        losses.append(float(rec.detach()))
        if step % 50 == 0 or step == steps - 1:
            log(
                f"vae step {step}/{steps} recon {float(rec.detach()):.4f} kl {float(kl.detach()):.3f} "
                f"({time.time() - start:.0f}s)"
            )
    vae.eval().requires_grad_(False)
    return losses


@torch.no_grad()
def encode_clips(
    vae: AutoencoderKLWan, clips: torch.Tensor | np.ndarray, batch_size: int = 16
) -> torch.Tensor:
    """Raw (unnormalised) latent means [N, z, f, h, w] of uint8 clips [N, F, H, W, 3]."""
    out = [
        vae.encode(frames_to_tensor(clips[i : i + batch_size])).latent_dist.mode()
        for i in range(0, len(clips), batch_size)
    ]
    return torch.cat(out)


@torch.no_grad()
def set_latent_stats(vae: AutoencoderKLWan, clips) -> tuple[list[float], list[float]]:
    """Measure per-channel latent mean/std on ``clips`` and store them in the VAE's config."""
    z = encode_clips(vae, clips)
    mean = z.mean(dim=(0, 2, 3, 4)).tolist()
    std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-3).tolist()
    vae.register_to_config(latents_mean=mean, latents_std=std)
    return mean, std


@torch.no_grad()
def palette_accuracy(vae: AutoencoderKLWan, clips) -> float:
    """Fraction of pixels whose nearest ShapesWorld palette colour survives encode -> decode."""
    from .shapesworld import palette_indices

    z = encode_clips(vae, clips)
    hits = total = 0
    for i in range(len(clips)):
        recon = (
            ((vae.decode(z[i : i + 1]).sample[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0)
        )
        a, b = palette_indices(np.asarray(clips[i])), palette_indices(recon.numpy())
        hits += int((a == b).sum())
        total += a.size
    return hits / total


@torch.no_grad()
def detector_accuracy(vae: AutoencoderKLWan, n: int = 24) -> dict:
    """Detector accuracy on encode -> decode of ``n`` val clips: a ceiling for text-to-video."""
    from .shapesworld import aggregate, detailed_caption, detect, iter_split, render, score_detection

    scenes = [s for _, s in iter_split("val", n)]
    clips = np.stack([render(s) for s in scenes])
    z = encode_clips(vae, clips)
    rows = []
    for i in range(n):
        recon = (
            ((vae.decode(z[i : i + 1]).sample[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0)
        )
        rows.append(score_detection(detect(recon.numpy()), detailed_caption(scenes[i])))
    return {k: round(v, 3) for k, v in aggregate(rows).items()}


def build(
    data_dir: str,
    out_dir: str,
    num_vae_clips: int = 600,
    vae_steps: int = 1500,
    vae_batch: int = 32,
    vae_lr: float = 1e-3,
    vae_base_dim: int = 16,
    vae_z_dim: int = 8,
    text_steps: int = 400,
    seed: int = 0,
    vae_temporal_steps: int = 0,
    vae_temporal_batch: int = 8,
    text_context: int = 0,
    text_only: bool = False,
) -> dict:
    """Build tokenizer, text encoder and VAE from the dataset at ``data_dir`` into ``out_dir``; report.
    ``text_only``: rebuild the tokenizer and text encoder only, keeping the VAE already in ``out_dir``."""
    from .data import load_clips, read_metadata

    torch.manual_seed(seed)
    out = Path(out_dir)
    if text_only and not (out / "vae" / "config.json").exists():
        raise ValueError(f"{out} has no vae/: --text-only rebuilds the text encoder of an existing components folder")
    rows = read_metadata(data_dir)
    report = {}

    # 1. Tokenizer + text encoder
    start = time.time()
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(out / "tokenizer")
    encoder = build_text_encoder(len(tokenizer))
    texts = [r["prompt"] for r in rows] + [r["caption"] for r in rows]
    losses = pretrain_text_encoder(encoder, tokenizer, texts, steps=text_steps, seed=seed, context=text_context)
    encoder.save_pretrained(out / "text_encoder")
    report["text_encoder"] = {
        "mlm_loss_first": losses[0],
        "mlm_loss_last": float(np.mean(losses[-20:])),  # with context: the sum of the three tasks' losses
        "context": text_context,
        "seconds": round(time.time() - start, 1),
    }
    print(f"text encoder: pretraining loss {losses[0]:.3f} -> {report['text_encoder']['mlm_loss_last']:.3f}")
    if text_only:
        report_file = out / "report.json"
        kept = json.loads(report_file.read_text()) if report_file.exists() else {}
        report = kept | report
        report_file.write_text(json.dumps(report, indent=2))
        return report

    # 2. VAE
    start = time.time()
    clips = torch.from_numpy(load_clips(data_dir, rows[:num_vae_clips], (NUM_FRAMES, HEIGHT, WIDTH)))
    print(f"loaded {len(clips)} clips for the VAE ({time.time() - start:.0f}s)")
    vae = build_vae(vae_base_dim, vae_z_dim)
    losses = train_vae(vae, clips, steps=vae_steps, batch_size=vae_batch, lr=vae_lr, seed=seed)
    if vae_temporal_steps > 0:
        # whole clips: a compressing VAE's causal cache drifts on shorter windows
        report["vae_per_frame"] = {"recon_last": float(np.mean(losses[-20:])), "seconds": round(time.time() - start, 1)}
        vae = temporal_from_per_frame(vae)
        losses = train_vae(
            vae, clips, steps=vae_temporal_steps, batch_size=vae_temporal_batch, window=NUM_FRAMES, lr=vae_lr / 2,
            seed=seed + 1,
        )
    held = clips[-32:]
    mean, std = set_latent_stats(vae, clips[:256])
    acc = palette_accuracy(vae, held)
    vae.save_pretrained(out / "vae")
    report["vae"] = {
        "recon_last": float(np.mean(losses[-20:])),
        "palette_accuracy": acc,
        "detector_on_reconstructions": detector_accuracy(vae),
        "latents_mean": mean,
        "latents_std": std,
        "seconds": round(time.time() - start, 1),
    }
    print(f"vae: palette accuracy of reconstructions {acc:.4f}")
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def load_components(components_dir: str):
    """(tokenizer, text_encoder, vae) from a folder written by :func:`build` (or a pipeline folder)."""
    path = Path(components_dir)
    tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
    text_encoder = UMT5EncoderModel.from_pretrained(path / "text_encoder").eval()
    vae = AutoencoderKLWan.from_pretrained(path / "vae").eval()
    return tokenizer, text_encoder, vae


def uni_from_base(
    wan: WanTransformer3DModel, tokenizer, ffn_t_init: str = "copy", max_text_len: int | None = None
) -> UniViGUTransformer:
    """The base generator as a UniViGU transformer, as Stage 1 starts it: a discrete text stream over
    ``tokenizer``'s words (mask source) of ``max_text_len`` positions (default: the tokenizer's), its text
    head at zero (``UniViGUTransformer.from_wan``); the base's coordinate channels, if any, stay coordinates."""
    return UniViGUTransformer.from_wan(
        wan,
        ffn_t_init=ffn_t_init,
        position_channels=position_channels(wan),
        text_formulation="discrete",
        text_source="mask",
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        max_text_len=max_text_len or tokenizer.model_max_length,
    )


def load_transformer(
    transformer_dir: str, tokenizer, max_text_len: int | None = None, ffn_t_init: str = "copy"
) -> UniViGUTransformer:
    """A trained UniViGU transformer, or a base generator (``WanTransformer3DModel``) converted with
    :func:`uni_from_base`."""
    config = json.loads((Path(transformer_dir) / "config.json").read_text())
    if config.get("_class_name") == WanTransformer3DModel.__name__:
        if tokenizer is None:
            raise ValueError(
                f"{transformer_dir} is a base generator: converting it needs the tokenizer (pass --components)"
            )
        wan = WanTransformer3DModel.from_pretrained(transformer_dir)
        return uni_from_base(wan, tokenizer, ffn_t_init, max_text_len=max_text_len)
    return UniViGUTransformer.from_pretrained(transformer_dir)


def grow_transformer(model: UniViGUTransformer, extra_layers: int) -> UniViGUTransformer:
    """``model`` with ``extra_layers`` more blocks on top, each the identity at first.

    A block adds its self-attention, cross-attention and FFN outputs to the residual stream; with those
    output projections at zero (both FFNs) the grown model computes exactly what ``model`` did, and the
    zeroed weights still get gradients, so training puts the new depth to use (as adaLN-zero and ControlNet
    start new layers). The other weights of the new blocks start as diffusers initialises them; float32."""
    if extra_layers < 1:
        raise ValueError(f"extra_layers must be at least 1, got {extra_layers}")
    layers = model.config.num_layers
    grown = UniViGUTransformer.from_config({**model.config, "num_layers": layers + extra_layers})
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    new_blocks = tuple(f"blocks.{i}." for i in range(layers, layers + extra_layers))
    assert not unexpected and all(k.startswith(new_blocks) for k in missing), (missing, unexpected)
    with torch.no_grad():
        for block in grown.blocks[layers:]:
            ffn_outs = [[m for m in ffn.net if isinstance(m, torch.nn.Linear)][-1] for ffn in (block.ffn, block.ffn_t)]
            for out in (block.attn1.to_out[0], block.attn2.to_out[0], *ffn_outs):
                out.weight.zero_()
                out.bias.zero_()
    return grown


def interpolate_shared(tuned: UniViGUTransformer, base: UniViGUTransformer, alpha: float) -> UniViGUTransformer:
    """Move the weights the video and the text share back toward the base generator (WiSE-FT, Wortsman et
    al. 2022): each becomes ``alpha * tuned + (1 - alpha) * base``; the text stream's own weights
    (:meth:`UniViGUTransformer.is_text_own`) stay ``tuned``'s. ``alpha = 1`` is ``tuned`` unchanged."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    mine, theirs = tuned.state_dict(), base.state_dict()
    shared = [n for n in mine if not UniViGUTransformer.is_text_own(n)]
    wrong = [n for n in shared if n not in theirs or theirs[n].shape != mine[n].shape]
    if wrong:
        raise ValueError(
            f"the base generator does not match the transformer ({len(wrong)} shared weights missing or of "
            f"another shape, e.g. {wrong[0]}): pass the generator this transformer was trained from"
        )
    with torch.no_grad():
        for n in shared:
            mine[n].copy_(alpha * mine[n] + (1.0 - alpha) * theirs[n])
    return tuned


def assemble(
    components_dir: str,
    transformer_dir: str,
    out_dir: str,
    shift: float,
    base_dir: str | None = None,
    alpha: float = 1.0,
) -> UniViGUPipeline:
    """Write a ``UniViGUPipeline`` folder from the components and a trained UniViGU transformer.

    A base generator (``WanTransformer3DModel``) is converted with :func:`uni_from_base`: with its text
    stream masked that pipeline's text-to-video is the base's, through the UniViGU sampler. With
    ``base_dir`` the shared weights are interpolated toward that generator (:func:`interpolate_shared`)."""
    tokenizer, text_encoder, vae = load_components(components_dir)
    transformer = load_transformer(transformer_dir, tokenizer)
    if base_dir is not None:
        base = load_transformer(base_dir, tokenizer, max_text_len=transformer.config.max_text_len)
        transformer = interpolate_shared(transformer, base, alpha)
    transformer.eval()
    pipe = UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        default_num_frames=NUM_FRAMES,
        default_height=HEIGHT,
        default_width=WIDTH,
        fps=FPS,
    )
    pipe.save_pretrained(out_dir)
    return pipe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--data", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--vae-clips", type=int, default=600)
    b.add_argument("--vae-steps", type=int, default=1500)
    b.add_argument("--vae-batch", type=int, default=32)
    b.add_argument("--vae-lr", type=float, default=1e-3)
    b.add_argument("--vae-base-dim", type=int, default=16)
    b.add_argument("--vae-z-dim", type=int, default=8)
    b.add_argument(
        "--vae-temporal-steps",
        type=int,
        default=0,
        help="then make the VAE compress time 4x and fine-tune it on whole clips for this many steps (0: per-frame)",
    )
    b.add_argument("--vae-temporal-batch", type=int, default=8)
    b.add_argument("--text-steps", type=int, default=400)
    b.add_argument(
        "--text-context",
        type=int,
        default=0,
        help="also pretrain the text encoder to name the words this many places around each word and its place",
    )
    b.add_argument("--text-only", action="store_true", help="rebuild the text encoder only; OUT keeps its VAE")
    b.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("assemble")
    a.add_argument("--components", required=True)
    a.add_argument("--transformer", required=True)
    a.add_argument("--out", required=True)
    a.add_argument(
        "--shift", type=float, required=True, help="the video time shift the transformer was trained with"
    )
    a.add_argument("--base", help="a generator to interpolate the shared weights toward (with --alpha)")
    a.add_argument("--alpha", type=float, default=1.0, help="shared weights = alpha * transformer + (1 - alpha) * base")
    g = sub.add_parser("grow", help="add identity blocks on top of a transformer (a base generator is converted)")
    g.add_argument("--transformer", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--extra-layers", type=int, default=2)
    g.add_argument("--components", help="the tokenizer's folder's parent: needed to convert a base generator")
    g.add_argument(
        "--max-text-len", type=int, default=None, help="text positions of a converted base (default: the tokenizer's)"
    )
    g.add_argument("--seed", type=int, default=0, help="the new blocks' (and a converted base's text stream's) init")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.cmd == "grow":
        try:
            tokenizer = AutoTokenizer.from_pretrained(Path(args.components) / "tokenizer") if args.components else None
            torch.manual_seed(args.seed)
            model = load_transformer(args.transformer, tokenizer, max_text_len=args.max_text_len)
            torch.manual_seed(args.seed)
            grow_transformer(model, args.extra_layers).save_pretrained(args.out)
        except (ValueError, OSError) as error:  # a base generator without --components, a missing folder
            parser.error(str(error))
        print(f"wrote a {model.config.num_layers + args.extra_layers}-block transformer to {args.out}")
    elif args.cmd == "build":
        try:
            build(
                args.data,
                args.out,
                args.vae_clips,
                args.vae_steps,
                args.vae_batch,
                args.vae_lr,
                args.vae_base_dim,
                args.vae_z_dim,
                args.text_steps,
                args.seed,
                vae_temporal_steps=args.vae_temporal_steps,
                vae_temporal_batch=args.vae_temporal_batch,
                text_context=args.text_context,
                text_only=args.text_only,
            )
        except ValueError as error:  # bad input: a dataset row, or --text-only without a VAE
            parser.error(str(error))
    else:
        if args.alpha != 1.0 and args.base is None:
            parser.error("--alpha needs --base")
        try:
            assemble(args.components, args.transformer, args.out, args.shift, args.base, args.alpha)
        except (ValueError, OSError) as error:
            parser.error(str(error))
        print(f"wrote the pipeline to {args.out}")


if __name__ == "__main__":
    main()
