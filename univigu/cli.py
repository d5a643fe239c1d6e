"""The ``univigu`` command line: t2v, caption, joint, convert-official.

Every command prints a short human line, or with ``--json`` one JSON object; errors print one line naming the flag
and saying what to do, and exit with status 2. Arguments are checked before any weights load.
"""

import argparse
import glob
import json
import math
import os
import sys
from contextlib import contextmanager

import torch
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from . import PromptError
from .batch import engines
from .batch.work import CaptionJob, GenerateJob, ModelSpec, clip_items, find_clips, prompt_items
from .caching import CACHE_NAMES, parse_cache
from .clip_size import ClipSizes
from .loading import (
    CONVERT_DTYPES,
    HUB_ID,
    ModelLoadError,
    convert_official,
    default_model,
    load_pipeline,
    resolve_model,
)
from .official import CheckpointError
from .offload import (
    DTYPES,
    OFFLOAD_MODES,
    Placement,
    default_device,
    device_requirements,
    dtype_requirements,
    offload_requirements,
)
from .pipeline_text import BLANK, check_words, require_prompt, template_ids
from .settings import (
    CAPTION_STEPS,
    CAPTION_VIDEO_CACHE_INTERVAL,
    GENERATION_STEPS,
    GUIDANCE_SCALE,
    MAX_SEED,
    MAX_STEPS,
    check_video_cache_interval,
    draw_seed,
)
from .video_io import VideoError, read_video, write_video

DESCRIPTION = (
    "Uni-ViGU from the command line: generate a clip from a prompt (t2v), caption a clip or a folder of clips "
    "(caption), generate a clip with its caption (joint), or convert the authors' released checkpoint "
    "(convert-official)."
)
EPILOG = (
    "Run 'univigu COMMAND --help' for a command's options. Each command prints one short line, or one JSON object "
    "with --json. A bad argument prints one line naming the flag and what to do, and exits with status 2."
)
VIDEO_OUT_EXTENSIONS = (".mp4", ".gif")  # what write_video writes: H.264 in an mp4, or a gif


def _placement(args) -> Placement:
    cache = getattr(args, "cache", None)  # generation's step cache; captioning runs without one
    return Placement(args.device or default_device(), args.dtype, args.offload, args.vae_tiling, cache)


def _pipeline(args):
    with _flag("--model"):
        pipe = load_pipeline(args.model, _placement(args))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _emit(args, result: dict, human: str):
    print(json.dumps(result) if args.json else human)


# -------------------------------------------------------------------------------------------------
# Argument checks: each raises ValueError naming the flag, before any weights load
@contextmanager
def _flag(name: str):
    """Name the flag in a library check's one-line message."""
    try:
        yield
    except (ValueError, OSError) as err:
        raise ValueError(f"{name}: {err}") from err


def _check_range(flag: str, value, lo, hi=None, hint: str = "") -> None:
    if math.isfinite(value) and value >= lo and (hi is None or value <= hi):
        return
    bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
    raise ValueError(f"{flag} must be {bound}{hint}, got {value}")


def _check_out(flag: str, path: str, extensions: tuple[str, ...] | None = None) -> None:
    """A file the command can write: a format it writes, in an existing folder it may write to."""
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; name a file in it")
    if extensions and os.path.splitext(path)[1] not in extensions:
        raise ValueError(f"{flag} must name a {' or '.join(extensions)} file, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{flag}: no such folder: {folder}; create it first or choose another path")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"{flag}: cannot write {path} (permission denied); choose a path you can write to")


def _check_model_args(args) -> None:
    """What every model command takes: steps, seed and placement (the device, dtype and offload rules the studio
    applies to its settings)."""
    _check_range("--steps", args.steps, 1, MAX_STEPS)
    if args.seed is not None:
        _check_range("--seed", args.seed, 0, MAX_SEED)
    placement = _placement(args)
    for flag, problem in (
        (f"--device {placement.device}", device_requirements(placement.device)),
        (f"--dtype {args.dtype}", dtype_requirements(args.dtype, placement.device)),
        (f"--offload {args.offload}", offload_requirements(args.offload, placement.device)),
    ):
        if problem:
            with _flag(flag):
                raise ValueError(problem.split(": ", 1)[-1] if flag.startswith("--device") else problem)


def _clip_size(args, sizes: ClipSizes) -> tuple[int, int, int]:
    """--frames, --height and --width filled with the trained size and checked against the model's grid; a clip
    larger than the model was trained on is warned about (the studio refuses it; here the user's machine pays)."""
    size = sizes.check(args.frames, args.height, args.width, names=("--frames", "--height", "--width"))
    if sizes.larger_than_trained(*size):
        f, h, w = sizes.trained
        print(
            f"warning: {sizes.describe(size)} is larger than this model was trained on ({sizes.describe()}); "
            f"expect a poorer clip, or pass --frames {f} --height {h} --width {w} or less",
            file=sys.stderr,
        )
    return size


# -------------------------------------------------------------------------------------------------
# Commands
def cmd_generate(args):
    """t2v and joint: the same arguments, joint also returns a caption; t2v --prompts makes a dataset."""
    _check_model_args(args)
    if getattr(args, "prompts", None) is not None:
        return _generate_dataset(args)
    if args.out is None:
        raise ValueError("--prompt needs --out, the video file (.mp4 or .gif) to write")
    require_prompt(args.prompt, "--prompt")
    _check_range("--guidance", args.guidance, 1, hint=" (1 turns guidance off)")
    with _flag("--cache"):
        parse_cache(args.cache)
    _check_out("--out", args.out, VIDEO_OUT_EXTENSIONS)
    with _flag("--model"):  # a missing folder or an unreachable hub id, said now; a hub model's configs only
        sizes = ClipSizes.read(resolve_model(args.model or default_model(), allow_patterns=["*.json"]))
    size = _clip_size(args, sizes) if sizes else (args.frames, args.height, args.width)  # None: loading says why

    pipe = _pipeline(args)
    check_words(pipe.tokenizer, args.prompt, "--prompt")
    task = pipe.joint if args.command == "joint" else pipe.text_to_video
    out = task(
        args.prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        num_frames=size[0],
        height=size[1],
        width=size[2],
        seed=args.seed,
    )
    write_video(args.out, out.frames, fps=pipe.config.fps)
    result = {"video": args.out, "frames": int(out.frames.shape[0]), "seed": out.seed}
    if out.text is not None:
        result["caption"] = out.text
    human = f"wrote {args.out} (seed {out.seed})" + (f"\n{out.text}" if out.text is not None else "")
    _emit(args, result, human)


def cmd_caption(args):
    """One clip (``--video``: the caption printed) or many (``--videos``: rows appended to ``--out``)."""
    _check_model_args(args)
    with _flag("--video-cache-interval"):
        check_video_cache_interval(args.video_cache_interval)
    if args.fill is not None and not BLANK.search(args.fill):
        raise ValueError("--fill has no blank: mark each word to fill with _ (or _*N for N words)")
    if args.video is not None:
        if args.out is not None:
            raise ValueError("--out writes the rows of --videos; with --video the caption is printed")
        with _flag("--video"):
            frames, _ = read_video(args.video)
        pipe = _pipeline(args)
        with _flag("--fill"):
            if args.fill is not None:  # checked before any step runs
                template_ids(pipe.tokenizer, args.fill, pipe.max_text_len, pipe.transformer.config.pad_token_id)
        out = pipe.caption(
            frames,
            prompt=args.prompt,
            num_inference_steps=args.steps,
            seed=args.seed,
            video_cache_interval=args.video_cache_interval,
            template=args.fill,
        )
        _emit(args, {"caption": out.text, "notes": out.notes, "seed": out.seed}, f"{out.text}\n(seed {out.seed})")
        return
    if args.fill is not None:
        raise ValueError("--fill asks one clip (--video); a folder is captioned whole")
    if args.out is None:
        raise ValueError("--videos needs --out metadata.jsonl, the file the captions are appended to")
    _check_engine_args(args)
    _check_out("--out", args.out)
    if not os.path.exists(args.videos) and not glob.has_magic(args.videos):
        raise ValueError(f"--videos: no such file or folder: {args.videos}; pass a folder of clips or a glob")
    with _flag("--videos"):
        clips = find_clips(args.videos)
    with _flag("--model"):
        sizes = ClipSizes.read(resolve_model(args.model or default_model(), allow_patterns=["*.json"]))
    seed = args.seed if args.seed is not None else draw_seed()  # each clip's seed comes from it
    job = CaptionJob(
        _model_spec(args), args.steps, args.prompt, args.video_cache_interval, sizes.trained if sizes else None
    )
    _run_dataset(args, job, clip_items(clips, args.out, seed), args.out, seed)


def _generate_dataset(args):
    """t2v --prompts: a clip and a row per prompt, into --out-dir."""
    if args.out is not None or args.out_dir is None:
        raise ValueError("--prompts writes a clip per prompt into --out-dir DIR (not --out); pass --out-dir")
    _check_range("--guidance", args.guidance, 1, hint=" (1 turns guidance off)")
    with _flag("--cache"):
        parse_cache(args.cache)
    _check_engine_args(args)
    with _flag("--out-dir"):
        os.makedirs(args.out_dir, exist_ok=True)
        _check_out("--out-dir", os.path.join(args.out_dir, "metadata.jsonl"))
    seed = args.seed if args.seed is not None else draw_seed()  # each prompt's seed comes from it
    with _flag("--prompts"):
        items = prompt_items(args.prompts, seed)
    with _flag("--model"):
        sizes = ClipSizes.read(resolve_model(args.model or default_model(), allow_patterns=["*.json"]))
    size = _clip_size(args, sizes) if sizes else (args.frames, args.height, args.width)
    job = GenerateJob(_model_spec(args), args.steps, args.guidance, size, args.cache)
    _run_dataset(args, job, items, os.path.join(args.out_dir, "metadata.jsonl"), seed)


def _model_spec(args) -> ModelSpec:
    return ModelSpec(args.model or default_model(), args.dtype, args.device, args.offload, args.vae_tiling)


def _check_engine_args(args) -> None:
    _check_range("--batch-size", args.batch_size, 1)
    _check_range("--workers", args.workers, 1)
    _check_range("--gpus-per-worker", args.gpus_per_worker, 0)
    if args.engine == "local" and args.address is not None:
        raise ValueError("--address names a Ray cluster; pass --engine ray with it")
    if args.engine == "ray":
        from .batch.ray_engine import require_ray

        with _flag("--engine ray"):
            require_ray()


def _run_dataset(args, job, items: list, out: str, seed: int) -> None:
    """Run ``job`` over ``items`` into ``out`` on --engine (or only --merge its shards), and report."""
    if args.merge:
        added = engines.merge(items, out)
        _emit(args, {"out": out, "merged": added}, f"merged {added} rows into {out}")
        return
    options = {}
    if args.engine == "ray":
        from .batch.ray_engine import connect

        with _flag("--address"):
            connect(args.address)
        options = {"workers": args.workers, "gpus_per_worker": args.gpus_per_worker}
    summary = engines.run(job, items, out, args.engine, args.batch_size, progress=not args.json, **options)
    _emit(args, {"out": out, **summary.as_dict(), "seed": seed}, f"{summary.line()} (seed {seed})")


def cmd_convert(args):
    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"--checkpoint: no such file: {args.checkpoint}")
    if not os.path.exists(args.wan) and (args.wan.endswith(".json") or not HUB_ID.match(args.wan)):
        raise ValueError(f"--wan: no such file or folder: {args.wan}; pass a Wan2.1 Diffusers folder or hub id")
    if args.vocab_size is not None:
        _check_range("--vocab-size", args.vocab_size, 1)
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
    parser = argparse.ArgumentParser(prog="univigu", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, func):
        p = sub.add_parser(name, help=help, description=f"univigu {name}: {help}.", epilog=EPILOG.split(". ", 1)[1])
        p.set_defaults(func=func)
        return p

    def model_args(p, steps=GENERATION_STEPS):
        p.add_argument("--model", default=None, help=f"pipeline folder or hub id (default: {default_model()})")
        p.add_argument("--steps", type=int, default=steps, help=f"denoising steps, 1 to {MAX_STEPS} (default {steps})")
        p.add_argument(
            "--seed", type=int, default=None, help=f"0 to {MAX_SEED} (default: drawn at random, and reported)"
        )
        p.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best available)")
        p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
        p.add_argument("--offload", default="none", choices=OFFLOAD_MODES)
        p.add_argument("--vae-tiling", action="store_true")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    def gen_args(p, dataset=False):
        if dataset:  # t2v: one prompt, or a file of them
            prompts = p.add_mutually_exclusive_group(required=True)
            prompts.add_argument("--prompt", help="the clip's prompt")
            prompts.add_argument(
                "--prompts", help="a file of prompts, one a line (or a .jsonl of {prompt, seed}): a clip and a row each"
            )
            p.add_argument("--out", default=None, help="with --prompt: the video (.mp4 or .gif), in an existing folder")
            p.add_argument("--out-dir", default=None, help="with --prompts: the dataset folder")
            engine_args(p)
        else:
            p.add_argument("--prompt", required=True)
            p.add_argument("--out", required=True, help="output video (.mp4 or .gif) in an existing folder")
        p.add_argument(
            "--guidance",
            type=float,
            default=GUIDANCE_SCALE,
            help=f"classifier-free guidance, 1 or more (1: off; default {GUIDANCE_SCALE})",
        )
        p.add_argument("--frames", type=int, default=None, help="clip length (default: the model's trained length)")
        p.add_argument("--height", type=int, default=None, help="default: the model's trained height")
        p.add_argument("--width", type=int, default=None, help="default: the model's trained width")
        p.add_argument(
            "--cache",
            default=None,
            metavar="NAME[:VALUE]",
            help=f"diffusers' approximate step cache: one of {', '.join(CACHE_NAMES)} (default none; "
            "see univigu.caching)",
        )

    def engine_args(p):
        p.add_argument("--batch-size", type=int, default=1, help="with a folder or file: items per batch")
        p.add_argument(
            "--engine",
            default="local",
            choices=engines.ENGINES,
            help="local: this process; ray: Ray Data (pip install 'univigu[ray]'); both write the same rows",
        )
        p.add_argument("--address", default=None, help="with --engine ray: the cluster (default: Ray on this machine)")
        p.add_argument("--workers", type=int, default=1, help="with --engine ray: model actors (default 1)")
        p.add_argument(
            "--gpus-per-worker", type=float, default=0.0, help="with --engine ray: GPUs per actor (0: a CPU actor)"
        )
        p.add_argument("--merge", action="store_true", help="only assemble the metadata from finished shards")

    for name, help in (("t2v", "generate a clip from a prompt"), ("joint", "generate a clip and its caption together")):
        p = command(name, help, cmd_generate)
        model_args(p)
        gen_args(p, dataset=name == "t2v")

    p = command("caption", "caption a video file, or a folder of them into metadata.jsonl", cmd_caption)
    model_args(p, steps=CAPTION_STEPS)
    clips = p.add_mutually_exclusive_group(required=True)
    clips.add_argument("--video", help="one clip: print its caption")
    clips.add_argument("--videos", help="a folder or glob of clips: append a row per clip to --out")
    p.add_argument("--out", default=None, help="with --videos: metadata.jsonl (resumed if it exists)")
    engine_args(p)
    p.add_argument("--prompt", default=None, help="optional prompt to condition the caption")
    p.add_argument(
        "--fill",
        default=None,
        metavar="TEMPLATE",
        help="ask the clip: a caption with blanks to fill, e.g. 'a _ circle moves _*2' (_ one word's position, "
        "_*N N of them); the rest is kept as written",
    )
    p.add_argument(
        "--video-cache-interval",
        type=int,
        default=CAPTION_VIDEO_CACHE_INTERVAL,
        help="compute the clip's keys and values every K steps, the text alone between (1: the full sequence "
        f"every step; default {CAPTION_VIDEO_CACHE_INTERVAL})",
    )

    p = command("convert-official", "convert the authors' released checkpoint into a pipeline folder", cmd_convert)
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
