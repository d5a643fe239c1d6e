"""Full size on a workstation: convert, load and run Uni-ViGU at Wan2.1-T2V-1.3B's architecture on the CPU.

Writes a random checkpoint in the authors' release format (``{"model": state_dict, "step": 0}``, their key
names) at Wan2.1-T2V-1.3B's width (hidden 1536, 12 heads x 128, FFN 8960, umT5 text dim 4096, vocabulary
256,384 + the mask id), converts it with ``univigu convert-official --dtype bfloat16``, loads it in bfloat16 and
runs one forward, then one text-to-video step and one captioning step on a small clip, without and with group
offload. Every phase runs in a child process of its own, which reports its peak resident memory; the table
(markdown) compares them with the targets: conversion <= 1.25 x the checkpoint + 1 GB, loading and a forward
<= the bf16 weights + 1.5 GB.

Only the transformer is full size. The prompt encoder is a stand-in (a one-layer UMT5 over the same 256,384
ids, projected to 4096: umT5-XXL would add 11 GB that is not under test), the VAE a small ``AutoencoderKLWan``
with Wan's 16 latent channels, and the tokenizer a word tokenizer with 256,384 entries.

    python benchmarks/full_size.py                 # 30 blocks (~13 GB of free memory, ~19 GB of disk)
    python benchmarks/full_size.py --layers 2      # the full width with 2 blocks, a few minutes
"""

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from transformers.modeling_outputs import BaseModelOutput

from univigu import UniViGUPipeline, UniViGUTransformer
from univigu.official import empty_transformer, official_key
from univigu.tiny import TINY_WORDS, tiny_text_encoder, tiny_vae
from univigu.tokenization import build_word_tokenizer

VOCAB_SIZE = 256384  # umT5's tokenizer; the mask source adds one row (the mask id)
TEXT_SOURCE = "mask"
WAN_1_3B = {
    "_class_name": "WanTransformer3DModel",
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "image_dim": None,
    "in_channels": 16,
    "num_attention_heads": 12,
    "num_layers": 30,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,
    "text_dim": 4096,
}
CLIP = (5, 32, 32)  # frames, height, width of the small clip (latents 16 x 2 x 8 x 8: 32 video tokens)
GB = 1e9


def wan_config(layers: int = 30) -> dict:
    """Wan2.1-T2V-1.3B's transformer config with ``layers`` blocks."""
    return dict(WAN_1_3B, num_layers=layers)


@torch.no_grad()
def write_official_checkpoint(path: str, layers: int = 30, dtype: torch.dtype = torch.float32, seed: int = 0) -> dict:
    """A random checkpoint in the authors' format at the 1.3B width; returns ``{official key: sha1 of its bytes}``.

    Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.02^2), norm weights 1, modulation tables ~ N(0, 0.1^2): outputs
    stay finite at any depth.
    """
    wan = wan_config(layers)
    config = {k: wan[k] for k in UniViGUTransformer.WAN_CONFIG_KEYS}
    model = empty_transformer(dict(config, vocab_size=VOCAB_SIZE, text_source=TEXT_SOURCE))
    gen = torch.Generator().manual_seed(seed)
    state, digests = {}, {}
    for name, meta in model.state_dict().items():
        if "norm" in name and not name.endswith("bias"):
            tensor = torch.ones(meta.shape, dtype=dtype)
        else:
            std = 0.02 if name.endswith("bias") else 0.1 if "scale_shift_table" in name else meta[0].numel() ** -0.5
            tensor = torch.randn(meta.shape, generator=gen, dtype=dtype).mul_(std)
        state[official_key(name)] = tensor
        digests[official_key(name)] = hashlib.sha1(tensor.view(torch.uint8).numpy()).hexdigest()
    head_dim = WAN_1_3B["attention_head_dim"]
    state["rotary_emb_text.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    torch.save({"model": state, "step": 0}, path)
    return digests


class StandInPromptEncoder(torch.nn.Module):
    """A one-layer UMT5 over the real vocabulary, projected to Wan's 4096-wide prompt embeddings (a stand-in for
    umT5-XXL, which is not under test). Called like ``UMT5EncoderModel``: ``(input_ids, attention_mask)``."""

    def __init__(self, vocab_size: int = VOCAB_SIZE, text_dim: int = 4096, width: int = 32):
        super().__init__()
        self.encoder = tiny_text_encoder(vocab_size, d_model=width)
        self.proj = torch.nn.Linear(width, text_dim)

    @property
    def device(self) -> torch.device:
        return self.proj.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.proj.weight.dtype

    def forward(self, input_ids, attention_mask=None):
        hidden = self.encoder(input_ids, attention_mask).last_hidden_state
        return BaseModelOutput(last_hidden_state=self.proj(hidden))


def full_vocabulary_tokenizer(vocab_size: int = VOCAB_SIZE, max_length: int = 256):
    """A word tokenizer with exactly ``vocab_size`` ids (ShapesWorld's words, then ``w0``, ``w1``, ...)."""
    words = list(TINY_WORDS)
    words += [f"w{i}" for i in range(vocab_size - 3 - len(set(words)))]
    tokenizer = build_word_tokenizer(words, model_max_length=max_length)
    assert len(tokenizer) == vocab_size, len(tokenizer)
    return tokenizer


def stand_in_pipeline(transformer: UniViGUTransformer, clip: tuple[int, int, int] = CLIP) -> UniViGUPipeline:
    """A UniViGUPipeline around a full-size ``transformer``, with small stand-ins for the other components."""
    torch.manual_seed(0)
    frames, height, width = clip
    return UniViGUPipeline(
        tokenizer=full_vocabulary_tokenizer(transformer.config.vocab_size),
        text_encoder=StandInPromptEncoder(transformer.config.vocab_size, transformer.config.text_dim),
        vae=tiny_vae(z_dim=transformer.config.in_channels),
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        default_num_frames=frames,
        default_height=height,
        default_width=width,
        fps=8,
    )


def small_forward(transformer: UniViGUTransformer) -> dict:
    """One forward on the small clip's latent grid with 16 text tokens; outputs' shapes and finiteness."""
    cfg = transformer.config
    frames, height, width = CLIP
    latents = torch.randn(1, cfg.in_channels, (frames - 1) // 4 + 1, height // 4, width // 4, dtype=transformer.dtype)
    out = transformer(
        video_latents=latents,
        video_timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, 32, cfg.text_dim, dtype=transformer.dtype),
        text_timestep=torch.tensor([1000.0]),
        text_tokens=torch.randint(3, cfg.vocab_size, (1, 16)),
    )
    return {
        "video_velocity": tuple(out.video_velocity.shape),
        "text_logits": tuple(out.text_logits.shape),
        "finite": bool(out.video_velocity.isfinite().all() and out.text_logits.isfinite().all()),
    }


# ------------------------------------------------------------------------------------------------
# Phases: each runs in its own process (``--phase``) and prints one JSON line with its peak memory.
def _phase(args) -> dict:
    from univigu.cli import main as cli_main
    from univigu.offload import apply_offload

    work = args.workdir
    ckpt, folder = os.path.join(work, "official.pth"), os.path.join(work, "converted")
    config_file = os.path.join(work, "wan_transformer_config.json")
    row: dict = {}
    start = time.perf_counter()
    if args.phase == "write":
        with open(config_file, "w") as f:
            json.dump(wan_config(args.layers), f)
        write_official_checkpoint(ckpt, args.layers, getattr(torch, args.source_dtype))
        row["bytes"] = os.path.getsize(ckpt)
    elif args.phase == "convert":
        argv = ["convert-official", "--checkpoint", ckpt, "--wan", config_file, "--out", folder, "--dtype", "bfloat16"]
        code = cli_main([*argv, "--vocab-size", str(VOCAB_SIZE), "--text-source", TEXT_SOURCE])
        if code:
            raise SystemExit(f"convert-official failed with status {code}")
        row["bytes"] = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    else:
        with torch.no_grad():
            transformer = UniViGUTransformer.from_pretrained(folder, dtype=torch.bfloat16).eval()
            row["parameters"] = sum(p.numel() for p in transformer.parameters())
            if args.phase == "load":
                row.update(small_forward(transformer))
            else:
                task, offload = args.phase.split("-") if "-" in args.phase else (args.phase, "none")
                pipe = stand_in_pipeline(transformer)
                pipe.set_progress_bar_config(disable=True)
                apply_offload(pipe, offload, "cpu", torch.bfloat16)
                clip = torch.randint(0, 256, (*CLIP, 3), dtype=torch.uint8).numpy()  # uint8 [F, H, W, 3]
                step = time.perf_counter()
                if task == "t2v":
                    out = pipe.text_to_video("a red circle moves left", num_inference_steps=1, seed=0)
                    row["frames"] = tuple(out.frames.shape)
                else:
                    out = pipe.caption(clip, num_inference_steps=1, seed=0)
                    row["caption_words"] = len(out.text.split())
                row["step_s"] = round(time.perf_counter() - step, 2)
    row["seconds"] = round(time.perf_counter() - start, 1)
    row["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return row


PHASES = ("write", "convert", "load", "t2v", "caption", "t2v-group", "caption-group")


def _run_phase(phase: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--phase", phase, "--workdir", args.workdir]
    cmd += ["--layers", str(args.layers), "--source-dtype", args.source_dtype]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30, help="transformer blocks (Wan2.1-1.3B: 30)")
    parser.add_argument("--source-dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--workdir", default=None, help="where the multi-GB files go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint and the converted folder")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    parser.add_argument("--resume", action="store_true", help="reuse the phases already measured in --workdir")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.phase:
        print(json.dumps(_phase(args)), flush=True)
        return

    own_workdir = args.workdir is None
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="univigu-full-size-")
    os.makedirs(args.workdir, exist_ok=True)
    rows = {}
    try:
        for phase in PHASES:
            done = os.path.join(args.workdir, f"{phase}.json")
            if args.resume and os.path.exists(done):
                with open(done) as f:
                    rows[phase] = json.load(f)
                continue
            rows[phase] = _run_phase(phase, args)
            with open(done, "w") as f:
                json.dump(rows[phase], f)
            print(f"{phase}: {json.dumps(rows[phase])}", file=sys.stderr, flush=True)
    finally:
        if not args.keep:  # the multi-GB files
            shutil.rmtree(os.path.join(args.workdir, "converted"), ignore_errors=True)
            if os.path.exists(os.path.join(args.workdir, "official.pth")):
                os.remove(os.path.join(args.workdir, "official.pth"))
            if own_workdir:
                shutil.rmtree(args.workdir, ignore_errors=True)

    ckpt_bytes, bf16_bytes = rows["write"]["bytes"], rows["convert"]["bytes"]
    targets = {"convert": 1.25 * ckpt_bytes + GB, "load": bf16_bytes + 1.5 * GB}
    params = rows["load"]["parameters"]
    lines = [
        f"Wan2.1-T2V-1.3B architecture, {args.layers} blocks, vocabulary {VOCAB_SIZE:,} + mask: "
        f"{params / 1e9:.3f} B parameters; checkpoint ({args.source_dtype}) {_fmt_gb(ckpt_bytes)}, "
        f"converted (bfloat16) {_fmt_gb(bf16_bytes)}. "
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}. "
        f"Clip {CLIP[0]}x{CLIP[1]}x{CLIP[2]}, one step.",
        "",
        "| phase | peak resident | target | time | notes |",
        "|---|---|---|---|---|",
    ]
    notes = {
        "write": "random checkpoint in the authors' format (torch.save holds it whole)",
        "convert": "`univigu convert-official --dtype bfloat16` (streamed, sharded safetensors)",
        "load": "`from_pretrained(dtype=bfloat16)` + one forward",
        "t2v": "pipeline, one text-to-video step",
        "caption": "pipeline, one caption step (256 text positions)",
        "t2v-group": "the same with group offload (block level)",
        "caption-group": "the same with group offload (block level)",
    }
    for phase in PHASES:
        row = rows[phase]
        target = targets.get(phase)
        verdict = "" if target is None else f"{_fmt_gb(target)} ({'met' if row['peak_rss'] <= target else 'MISSED'})"
        step = f" (step {row['step_s']} s)" if "step_s" in row else ""
        peak = _fmt_gb(row["peak_rss"])
        lines.append(f"| {phase} | {peak} | {verdict} | {row['seconds']} s{step} | {notes[phase]} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
