"""The frozen parts of the bundled model: word tokenizer, small UMT5 and Wan VAE, in the diffusers pipeline layout.

    python -m training.shapesworld.components --data runs/data/train --out runs/components [--vae-steps N ...]

writes ``tokenizer/`` (:mod:`.tokenizer`), ``text_encoder/`` (:mod:`.text_encoder`) and ``vae/`` (:mod:`.vae`)
and a ``report.json`` with the text encoder's pretraining loss and the VAE's reconstruction scores.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from univigu.durable import replace_file

from ..data import load_clips, read_metadata
from .spec import HEIGHT, NUM_FRAMES, WIDTH
from .text_encoder import build_text_encoder, pretrain_text_encoder
from .tokenizer import build_tokenizer
from .vae import build_vae, detector_accuracy, palette_accuracy, set_latent_stats, temporal_from_per_frame, train_vae


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
    vae_temporal_factor: int = 4,
    vae_spatial_factor: int = 4,
    text_context: int = 0,
    text_only: bool = False,
    palette_clips: int = 32,
    detector_clips: int = 24,
) -> dict:
    """Build tokenizer, text encoder and VAE from the dataset at ``data_dir`` into ``out_dir``; report.
    ``text_only``: rebuild the tokenizer and text encoder only, keeping the VAE already in ``out_dir``.
    ``palette_clips`` / ``detector_clips``: the report's held-out training clips and val clips."""
    if vae_temporal_steps > 0 and vae_temporal_factor > vae_spatial_factor:
        # a 2x-spatial VAE downsamples once, so it can halve time once: refused before any training
        raise ValueError(
            f"--vae-temporal-factor {vae_temporal_factor} needs --vae-spatial-factor 4 "
            f"(a {vae_spatial_factor}x-spatial VAE compresses time 2x at most)"
        )
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
    texts = [r["prompt"] for r in rows] + [r["caption"] for r in rows if r["caption"]]
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
        replace_file(report_file, json.dumps(report, indent=2))
        return report

    # 2. VAE
    start = time.time()
    clips = torch.from_numpy(load_clips(data_dir, rows[:num_vae_clips], (NUM_FRAMES, HEIGHT, WIDTH)))
    print(f"loaded {len(clips)} clips for the VAE ({time.time() - start:.0f}s)")
    vae = build_vae(vae_base_dim, vae_z_dim, vae_spatial_factor)
    # checkpointed in the folder: a build stopped in either VAE phase continues there (``train_vae``)
    checkpoints = [out / "vae-per-frame.ckpt", out / "vae-temporal.ckpt"]
    losses = train_vae(
        vae, clips, steps=vae_steps, batch_size=vae_batch, lr=vae_lr, seed=seed, checkpoint=checkpoints[0]
    )
    if vae_temporal_steps > 0:
        # whole clips: a compressing VAE's causal cache drifts on shorter windows
        report["vae_per_frame"] = {"recon_last": float(np.mean(losses[-20:])), "seconds": round(time.time() - start, 1)}
        vae = temporal_from_per_frame(vae, vae_temporal_factor)
        losses = train_vae(
            vae,
            clips,
            steps=vae_temporal_steps,
            batch_size=vae_temporal_batch,
            window=NUM_FRAMES,
            lr=vae_lr / 2,
            seed=seed + 1,
            checkpoint=checkpoints[1],
        )
    held = clips[-palette_clips:]
    mean, std = set_latent_stats(vae, clips[:256])
    acc = palette_accuracy(vae, held)
    vae.save_pretrained(out / "vae")
    report["vae"] = {
        "recon_last": float(np.mean(losses[-20:])),
        "palette_accuracy": acc,
        "detector_on_reconstructions": detector_accuracy(vae, detector_clips),
        "latents_mean": mean,
        "latents_std": std,
        "seconds": round(time.time() - start, 1),
    }
    print(f"vae: palette accuracy of reconstructions {acc:.4f}")
    replace_file(out / "report.json", json.dumps(report, indent=2))  # the recipe's mark of a finished build
    for checkpoint in checkpoints:
        checkpoint.unlink(missing_ok=True)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--vae-clips", type=int, default=600)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--vae-base-dim", type=int, default=16)
    parser.add_argument("--vae-z-dim", type=int, default=8)
    parser.add_argument(
        "--vae-temporal-steps",
        type=int,
        default=0,
        help="then make the VAE compress time and fine-tune it on whole clips for this many steps (0: per-frame)",
    )
    parser.add_argument("--vae-temporal-batch", type=int, default=8)
    parser.add_argument(
        "--vae-temporal-factor",
        type=int,
        choices=(2, 4),
        default=4,
        help="how many frames a latent frame holds: 4 (17 -> 5 latent frames) or 2 (17 -> 9)",
    )
    parser.add_argument(
        "--vae-spatial-factor",
        type=int,
        choices=(2, 4),
        default=4,
        help="how many pixels a latent cell spans each way: 4 (16 x 16 latents) or 2 (32 x 32; temporal factor 2)",
    )
    parser.add_argument("--text-steps", type=int, default=400)
    parser.add_argument(
        "--text-context",
        type=int,
        default=0,
        help="also pretrain the text encoder to name the words this many places around each word and its place",
    )
    parser.add_argument("--text-only", action="store_true", help="rebuild the text encoder only; OUT keeps its VAE")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
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
            vae_temporal_factor=args.vae_temporal_factor,
            vae_spatial_factor=args.vae_spatial_factor,
            text_context=args.text_context,
            text_only=args.text_only,
        )
    except ValueError as error:  # bad input: a dataset row, or --text-only without a VAE
        parser.error(str(error))


if __name__ == "__main__":
    main()
