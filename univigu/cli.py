"""``univigu`` command line: t2v, caption, joint, convert-official.

Every command prints a short human line, or with ``--json`` one JSON object; errors print one line
saying what to do and exit with status 2.
"""

import argparse
import json
import sys

import torch
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from . import PromptError
from .loading import ModelLoadError, convert_official, default_model, load_pipeline
from .official import CheckpointError
from .offload import DTYPES, OFFLOAD_MODES, apply_offload, default_device
from .pipeline_univigu import CAPTION_STEPS
from .video_io import VideoError, read_video, write_video


def _pipeline(args):
    pipe = load_pipeline(args.model, torch_dtype=DTYPES[args.dtype])
    apply_offload(pipe, args.offload, args.device or default_device(), DTYPES[args.dtype], vae_tiling=args.vae_tiling)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _emit(args, result: dict, human: str):
    print(json.dumps(result) if args.json else human)


def cmd_generate(args):
    """t2v and joint: the same arguments, joint also returns a caption."""
    pipe = _pipeline(args)
    task = pipe.joint if args.command == "joint" else pipe.text_to_video
    out = task(
        args.prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        seed=args.seed,
    )
    write_video(args.out, out.frames, fps=pipe.config.fps)
    result = {"video": args.out, "frames": int(out.frames.shape[0]), "seed": args.seed}
    if out.text is not None:
        result["caption"] = out.text
    _emit(args, result, f"wrote {args.out}" + (f"\n{out.text}" if out.text is not None else ""))


def cmd_caption(args):
    frames, _ = read_video(args.video)
    pipe = _pipeline(args)
    out = pipe.caption(frames, prompt=args.prompt, num_inference_steps=args.steps, seed=args.seed)
    _emit(args, {"caption": out.text, "notes": out.notes, "seed": args.seed}, out.text)


def cmd_convert(args):
    out = convert_official(
        args.checkpoint,
        args.wan,
        args.out,
        vocab_size=args.vocab_size,
        text_source=args.text_source,
        bf16_time_embedding=not args.fp32_time_embedding,
        overwrite=args.overwrite,
    )
    _emit(args, {"out": out}, f"wrote {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="univigu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p, steps=30):
        p.add_argument("--model", default=None, help=f"pipeline folder or hub id (default: {default_model()})")
        p.add_argument("--steps", type=int, default=steps, help="denoising steps")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best available)")
        p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
        p.add_argument("--offload", default="none", choices=OFFLOAD_MODES)
        p.add_argument("--vae-tiling", action="store_true")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    def gen_args(p):
        p.add_argument("--prompt", required=True)
        p.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
        p.add_argument("--guidance", type=float, default=5.0)
        p.add_argument("--frames", type=int, default=None)
        p.add_argument("--height", type=int, default=None)
        p.add_argument("--width", type=int, default=None)

    p = sub.add_parser("t2v", help="text to video")
    model_args(p)
    gen_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("joint", help="generate a clip and its caption together")
    model_args(p)
    gen_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("caption", help="caption a video file")
    model_args(p, steps=CAPTION_STEPS)
    p.add_argument("--video", required=True)
    p.add_argument("--prompt", default=None, help="optional prompt to condition the caption")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("convert-official", help="convert the authors' released checkpoint")
    p.add_argument("--checkpoint", required=True, help="the released .pth ({'model': state_dict, ...})")
    p.add_argument("--wan", required=True, help="Wan2.1 Diffusers folder / hub id, or a transformer config.json")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=None, help="text vocabulary (default: the Wan tokenizer's)")
    p.add_argument("--text-source", choices=["uniform", "mask"], default=None)
    p.add_argument("--fp32-time-embedding", action="store_true", help="do not round time embeddings to bf16")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        with torch.no_grad():  # scoped: main() is also called in-process (tests, scripts)
            args.func(args)
    except (ModelLoadError, CheckpointError, VideoError, PromptError, ValueError, FileNotFoundError) as err:
        message = str(err)
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        else:
            print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
