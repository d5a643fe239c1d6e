"""``univigu`` command line: t2v, caption, joint, convert-official.

Every command prints a short human line, or with ``--json`` one JSON object; errors print one line
saying what to do and exit with status 2.
"""

import argparse
import json
import secrets
import sys

import torch
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from . import PromptError
from .caching import CACHE_NAMES, parse_cache
from .caption_folder import caption_folder, find_clips
from .loading import CONVERT_DTYPES, ModelLoadError, convert_official, default_model, load_pipeline
from .official import CheckpointError
from .offload import DTYPES, OFFLOAD_MODES, apply_offload, default_device
from .pipeline_univigu import CAPTION_STEPS, CAPTION_VIDEO_CACHE_INTERVAL, check_video_cache_interval
from .video_io import VideoError, read_video, write_video


def _pipeline(args):
    pipe = load_pipeline(args.model, torch_dtype=DTYPES[args.dtype])
    apply_offload(pipe, args.offload, args.device or default_device(), DTYPES[args.dtype], vae_tiling=args.vae_tiling)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _emit(args, result: dict, human: str):
    print(json.dumps(result) if args.json else human)


def _check_words(pipe, prompt: str) -> None:
    """Refuse a prompt with words the model's vocabulary lacks (each would become the unknown token), as the studio
    does."""
    unknown = list(dict.fromkeys(pipe.unknown_words(prompt)))
    if not unknown:
        return
    vocabulary = [w for w in pipe.tokenizer.get_vocab() if w.isalnum()]
    knows = f" (it knows: {' '.join(sorted(vocabulary))})" if len(vocabulary) <= 100 else ""
    words = ", ".join(f"'{w}'" for w in unknown)
    them = "it" if len(unknown) == 1 else "them"
    raise PromptError(f"the model does not know {words}; rephrase without {them}{knows}")


def cmd_generate(args):
    """t2v and joint: the same arguments, joint also returns a caption."""
    parse_cache(args.cache)  # a bad spec fails before the model loads
    pipe = _pipeline(args)
    pipe.set_step_cache(args.cache)
    _check_words(pipe, args.prompt)
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
    result = {"video": args.out, "frames": int(out.frames.shape[0]), "seed": out.seed}
    if out.text is not None:
        result["caption"] = out.text
    _emit(args, result, f"wrote {args.out}" + (f"\n{out.text}" if out.text is not None else ""))


def cmd_caption(args):
    """One clip (``--video``: the caption printed) or many (``--videos``: rows appended to ``--out``)."""
    check_video_cache_interval(args.video_cache_interval)
    if args.video is not None:
        if args.out is not None:
            raise ValueError("--out writes the rows of --videos; with --video the caption is printed")
        frames, _ = read_video(args.video)
        pipe = _pipeline(args)
        out = pipe.caption(
            frames,
            prompt=args.prompt,
            num_inference_steps=args.steps,
            seed=args.seed,
            video_cache_interval=args.video_cache_interval,
        )
        _emit(args, {"caption": out.text, "notes": out.notes, "seed": out.seed}, out.text)
        return
    if args.out is None:
        raise ValueError("--videos needs --out metadata.jsonl, the file the captions are appended to")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    clips = find_clips(args.videos)
    pipe = _pipeline(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)  # one seed for every batch

    def caption(frames: list) -> list[str]:
        return pipe.caption(
            frames,
            prompt=args.prompt,
            num_inference_steps=args.steps,
            seed=seed,
            video_cache_interval=args.video_cache_interval,
        ).text

    summary = caption_folder(caption, clips, args.out, args.batch_size, progress=not args.json)
    _emit(args, {"out": args.out, **vars(summary), "seed": seed}, f"{summary.line()} (seed {seed})")


def cmd_convert(args):
    out = convert_official(
        args.checkpoint,
        args.wan,
        args.out,
        vocab_size=args.vocab_size,
        text_source=args.text_source,
        bf16_time_embedding=not args.fp32_time_embedding,
        overwrite=args.overwrite,
        dtype=args.dtype,
    )
    _emit(args, {"out": out}, f"wrote {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="univigu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p, steps=30):
        p.add_argument("--model", default=None, help=f"pipeline folder or hub id (default: {default_model()})")
        p.add_argument("--steps", type=int, default=steps, help="denoising steps")
        p.add_argument("--seed", type=int, default=None, help="default: drawn at random, and reported")
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
        p.add_argument(
            "--cache",
            default=None,
            metavar="NAME[:VALUE]",
            help=f"diffusers' approximate step cache: one of {', '.join(CACHE_NAMES)} (default none; "
            "see univigu.caching)",
        )

    p = sub.add_parser("t2v", help="text to video")
    model_args(p)
    gen_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("joint", help="generate a clip and its caption together")
    model_args(p)
    gen_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("caption", help="caption a video file, or a folder of them into metadata.jsonl")
    model_args(p, steps=CAPTION_STEPS)
    clips = p.add_mutually_exclusive_group(required=True)
    clips.add_argument("--video", help="one clip: print its caption")
    clips.add_argument("--videos", help="a folder or glob of clips: append a row per clip to --out")
    p.add_argument("--out", default=None, help="with --videos: metadata.jsonl (resumed if it exists)")
    p.add_argument("--batch-size", type=int, default=1, help="with --videos: clips per forward")
    p.add_argument("--prompt", default=None, help="optional prompt to condition the caption")
    p.add_argument(
        "--video-cache-interval",
        type=int,
        default=CAPTION_VIDEO_CACHE_INTERVAL,
        help="compute the clip's keys and values every K steps, the text alone between (1: the full sequence "
        f"every step; default {CAPTION_VIDEO_CACHE_INTERVAL})",
    )
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("convert-official", help="convert the authors' released checkpoint")
    p.add_argument("--checkpoint", required=True, help="the released .pth ({'model': state_dict, ...})")
    p.add_argument("--wan", required=True, help="Wan2.1 Diffusers folder / hub id, or a transformer config.json")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=None, help="text vocabulary (default: the Wan tokenizer's)")
    p.add_argument("--text-source", choices=["uniform", "mask"], default=None)
    p.add_argument("--fp32-time-embedding", action="store_true", help="do not round time embeddings to bf16")
    p.add_argument(
        "--dtype", default="keep", choices=list(CONVERT_DTYPES), help="weights' dtype (default: the checkpoint's)"
    )
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
    except (ModelLoadError, CheckpointError, VideoError, PromptError, ValueError, OSError) as err:
        message = " ".join(str(err).split())  # one line, whatever a library's message looked like
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        else:
            print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
