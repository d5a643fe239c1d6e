"""GPU benchmark at Wan2.1-T2V-1.3B's architecture, 480p x 81 frames, bfloat16, random weights.

Measures, and writes as one markdown table:

- the per-step cost of UniViGU's text stream: a text-to-video step (with guidance: 2 rows, the prompt's
  tokens in the text stream) against a plain diffusers ``WanTransformer3DModel`` holding the same weights
  (ratio; target <= 1.02), and a joint-generation step (256 text positions denoised with the clip);
- a 40-step caption with and without the video cache (``video_cache_interval``), when the pipeline has it;
- peak VRAM and step time of each offload mode of :func:`univigu.offload.apply_offload` (none, model, group
  = block level with CUDA streams, group-leaf, sequential, fp8 layerwise);
- the VAE's decode peak without and with tiling (Wan2.1's VAE architecture);
- a full 50-step text-to-video and a 40-step caption, end to end.

Only the transformer and the VAE are full size; the prompt encoder is the stand-in of ``full_size.py``
(umT5-XXL is not under test, and it is the same for Wan and UniViGU).

    python benchmarks/gpu.py --out runs/gpu.md     # needs CUDA; elsewhere it says so and exits 0
"""

import argparse
import gc
import inspect
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from full_size import VOCAB_SIZE, WAN_1_3B, StandInPromptEncoder, full_vocabulary_tokenizer  # noqa: E402

from univigu import UniViGUPipeline, UniViGUTransformer  # noqa: E402
from univigu.offload import OFFLOAD_MODES, apply_offload, offload_requirements  # noqa: E402
from univigu.tiny import tiny_vae, tiny_wan_config  # noqa: E402

PROMPT = "a red circle moves left"


@dataclass
class Size:
    wan: dict
    vocab_size: int
    clip: tuple[int, int, int]  # frames, height, width
    full_vae: bool
    t2v_steps: int
    caption_steps: int
    repeats: int


SIZES = {
    "1.3b": Size(
        {k: WAN_1_3B[k] for k in UniViGUTransformer.WAN_CONFIG_KEYS}, VOCAB_SIZE, (81, 480, 832), True, 50, 40, 10
    ),
    # The same code paths in seconds on a CPU (``--size tiny``): what the test suite runs.
    "tiny": Size(tiny_wan_config(in_channels=16, text_dim=64), 64, (5, 32, 32), False, 2, 2, 1),
}


class Bench:
    """Timing and peak memory on one device (peak VRAM on CUDA; not measured on a CPU)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def reset(self):
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> str:
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if self.cuda else "n/a (CPU)"

    def time(self, fn, repeats: int, warmup: int = 1) -> float:
        """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup``."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def once(self, fn):
        self.sync()
        start = time.perf_counter()
        result = fn()
        self.sync()
        return result, time.perf_counter() - start


def latent_grid(size: Size, spatial: int) -> tuple[int, int, int]:
    frames, height, width = size.clip
    return (frames - 1) // 4 + 1, height // spatial, width // spatial


def step_inputs(size: Size, grid, device, dtype, text_len: int, joint: bool) -> dict:
    """One guided step's transformer inputs: 2 rows (prompt, empty prompt) at the clip's latent grid."""
    gen = torch.Generator().manual_seed(0)
    cfg = size.wan
    latents = torch.randn(2, cfg["in_channels"], *grid, generator=gen).to(device, dtype)
    cond = torch.randn(2, 512, cfg["text_dim"], generator=gen).to(device, dtype)
    cond[1] = 0  # the empty prompt's embedding is zero past its length (Wan's)
    tokens = torch.randint(3, size.vocab_size, (2, text_len), generator=gen)
    if joint:  # the text stream being denoised: the mask id where not yet revealed, in both rows
        tokens[:, text_len // 2 :] = size.vocab_size
        mask = torch.ones(2, text_len, dtype=torch.bool)
        text_t = 500.0
    else:  # text-to-video: the prompt held clean; the guidance row's text stream is empty (all keys masked)
        tokens[1] = 0
        mask = torch.stack([torch.ones(text_len, dtype=torch.bool), torch.zeros(text_len, dtype=torch.bool)])
        text_t = 0.0
    return {
        "video_latents": latents,
        "video_timestep": torch.full((2,), 500.0, device=device),
        "encoder_hidden_states": cond,
        "text_timestep": torch.full((2,), text_t, device=device),
        "text_tokens": tokens.to(device),
        "text_attention_mask": mask.to(device),
    }


def make_pipeline(size: Size, folder: str, tokenizer) -> UniViGUPipeline:
    """The saved UniViGU transformer (bf16) in a pipeline with the stand-in prompt encoder and Wan2.1's VAE."""
    transformer = UniViGUTransformer.from_pretrained(folder, dtype=torch.bfloat16)
    frames, height, width = size.clip
    pipe = UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=StandInPromptEncoder(size.vocab_size, size.wan["text_dim"]).to(torch.bfloat16),
        vae=AutoencoderKLWan() if size.full_vae else tiny_vae(z_dim=size.wan["in_channels"]),
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        default_num_frames=frames,
        default_height=height,
        default_width=width,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def run(size_name: str, device: torch.device) -> list[tuple[str, str, str]]:
    """All measurements as (what, value, notes) rows."""
    size, bench, dtype = SIZES[size_name], Bench(device), torch.bfloat16
    work = tempfile.mkdtemp(prefix="univigu-gpu-")
    try:
        return _measure(size, size_name, bench, dtype, os.path.join(work, "transformer"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(size: Size, size_name: str, bench: Bench, dtype: torch.dtype, folder: str) -> list[tuple[str, str, str]]:
    device, rows = bench.device, []

    # 1. The same random weights in Wan and UniViGU, each saved and loaded in bf16 as a user would (so the
    # modules both keep in float32 stay float32); the text stream's cost per step
    torch.manual_seed(0)
    wan_folder = os.path.join(os.path.dirname(folder), "wan")
    with torch.device(device):
        wan = WanTransformer3DModel(**size.wan)
        uni = UniViGUTransformer.from_wan(wan, vocab_size=size.vocab_size, text_source="mask")
    torch.nn.init.normal_(uni.text_proj_out.weight, std=0.02)  # a trained head is not zero
    wan.save_pretrained(wan_folder)
    uni.save_pretrained(folder + "-fp32")
    del wan, uni
    bench.reset()
    wan = WanTransformer3DModel.from_pretrained(wan_folder, dtype=dtype).to(device).eval()
    uni = UniViGUTransformer.from_pretrained(folder + "-fp32", dtype=dtype).to(device).eval()
    uni.save_pretrained(folder)  # bf16 (its fp32 modules fp32): what the pipelines below load
    shutil.rmtree(folder + "-fp32")
    shutil.rmtree(wan_folder)
    spatial = 8 if size.full_vae else 4
    grid = latent_grid(size, spatial)
    prompt_len = 24
    t2v = step_inputs(size, grid, device, dtype, prompt_len, joint=False)
    joint = step_inputs(size, grid, device, dtype, 256 if size_name == "1.3b" else 16, joint=True)
    wan_inputs = (t2v["video_latents"], t2v["video_timestep"], t2v["encoder_hidden_states"])
    wan_s = bench.time(partial(wan, *wan_inputs, return_dict=False), size.repeats)
    uni_s = bench.time(partial(uni, **t2v), size.repeats)
    joint_s = bench.time(partial(uni, **joint), size.repeats)
    tokens = grid[0] * (grid[1] // 2) * (grid[2] // 2)
    rows += [
        ("Wan step (WanTransformer3DModel, 2 rows)", f"{wan_s * 1000:.1f} ms", f"{tokens} video tokens"),
        ("UniViGU text-to-video step", f"{uni_s * 1000:.1f} ms", f"+ {prompt_len} prompt tokens"),
        ("ratio UniViGU / Wan", f"{uni_s / wan_s:.4f}", "target <= 1.02"),
        ("UniViGU joint step", f"{joint_s * 1000:.1f} ms", f"{joint['text_tokens'].shape[1]} text positions"),
        ("ratio joint / Wan", f"{joint_s / wan_s:.4f}", ""),
    ]
    del wan, uni, t2v, joint, wan_inputs
    bench.reset()

    # 2. Offload modes: peak VRAM and step time of the pipeline's transformer under each
    tokenizer = full_vocabulary_tokenizer(size.vocab_size)
    for mode in OFFLOAD_MODES:
        reason = offload_requirements(mode, device.type)
        if reason:
            rows.append((f"offload {mode}", "skipped", reason))
            continue
        pipe = make_pipeline(size, folder, tokenizer)
        apply_offload(pipe, mode, device.type, dtype)
        bench.reset()
        inputs = step_inputs(size, grid, pipe._execution_device, dtype, prompt_len, joint=False)
        step_s = bench.time(partial(pipe.transformer, **inputs), max(2, size.repeats // 3))
        notes = {"group": "block level, CUDA streams" if bench.cuda else "block level", "fp8": "float8_e4m3 storage"}
        value = f"{step_s * 1000:.1f} ms / {bench.peak()}"
        rows.append((f"offload {mode}: step / peak VRAM", value, notes.get(mode, "")))
        del pipe, inputs
        bench.reset()

    # 3. End to end (no offload): a full text-to-video, the VAE decode with and without tiling, captions
    pipe = make_pipeline(size, folder, tokenizer)
    apply_offload(pipe, "none", device.type, dtype)
    bench.reset()
    out, seconds = bench.once(partial(pipe.text_to_video, PROMPT, num_inference_steps=size.t2v_steps, seed=0))
    rows.append((f"text-to-video, {size.t2v_steps} steps, end to end", f"{seconds:.1f} s", f"peak {bench.peak()}"))
    frames = out.frames
    latents = torch.randn(1, size.wan["in_channels"], *grid, generator=torch.Generator().manual_seed(0))
    for tiling in (False, True):
        pipe.vae.enable_tiling() if tiling else pipe.vae.disable_tiling()
        bench.reset()
        _, seconds = bench.once(partial(pipe.decode_latents, latents))
        rows.append((f"VAE decode {'tiled' if tiling else 'untiled'}", f"{seconds:.1f} s / {bench.peak()}", ""))
    pipe.vae.disable_tiling()

    has_cache = "video_cache_interval" in inspect.signature(pipe.caption).parameters
    intervals = [1, inspect.signature(pipe.caption).parameters["video_cache_interval"].default] if has_cache else [None]
    for interval in intervals:
        kwargs = {} if interval is None else {"video_cache_interval": interval}
        bench.reset()
        caption = partial(pipe.caption, frames, num_inference_steps=size.caption_steps, seed=0, **kwargs)
        _, seconds = bench.once(caption)
        what = "no video cache" if interval in (None, 1) else f"video cache every {interval} steps"
        rows.append((f"caption, {size.caption_steps} steps, end to end ({what})", f"{seconds:.1f} s", bench.peak()))
    if not has_cache:
        rows.append(("caption with the video cache", "not measured", "pipe.caption has no video_cache_interval"))
    del pipe
    bench.reset()
    return rows


def table(rows, size_name: str, device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    frames, height, width = SIZES[size_name].clip
    head = (
        f"{name}, torch {torch.__version__}, bfloat16, random weights, {size_name} architecture, "
        f"{frames} frames at {height}x{width}"
    )
    lines = [head, "", "| measurement | value | notes |", "|---|---|---|"]
    lines += [f"| {what} | {value} | {notes} |" for what, value, notes in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="1.3b")
    parser.add_argument("--device", default=None, help="default: cuda; a CPU runs only --size tiny")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and args.size != "tiny":
        print("benchmarks/gpu.py measures a GPU and this machine has no CUDA device: nothing to do.")
        return 0
    result = table(run(args.size, device), args.size, device)
    print(result)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(result + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
