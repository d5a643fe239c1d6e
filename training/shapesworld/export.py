"""Write a ShapesWorld split in the project's general training format.

    out_dir/videos/{seed}.mp4     one clip per seed, lossless
    out_dir/metadata.jsonl        {"video": "videos/{seed}.mp4", "prompt", "caption", "seed", "split"}

Videos are H.264 in RGB (`libx264rgb`) at `-qp 0`, i.e. mathematically lossless: decoding with
ffmpeg gives back the rendered pixels exactly, so the palette colours (which the detector and the
model rely on) survive. Ordinary yuv420p H.264 would blur colours and halve chroma resolution.
Every file is written to a temporary name in the same folder and moved into place, so a reader
never sees a half-written file.

CLI: python -m training.shapesworld.export --out DIR --split train --n 1000 [--start 0] [--captions 100]

``--captions N`` keeps the detailed caption of the first N clips only; the others get ``"caption": ""`` (a
brief prompt alone, as most video comes): the data of the ablation that asks what a generator trained on many
prompt-only clips is worth to a captioner trained on few captioned ones.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from .render import render
from .sample import SPLITS, iter_split
from .spec import FPS
from .text import brief_prompt, detailed_caption

VIDEO_CODEC = "libx264rgb"
VIDEO_PARAMS = ["-qp", "0", "-preset", "veryfast"]


def write_video(path: str | Path, frames: np.ndarray, fps: int = FPS) -> None:
    """Write uint8 [F, H, W, 3] RGB frames losslessly to `path` (.mp4), atomically."""
    path = Path(path)
    # keep the real suffix last: ffmpeg picks the container from it
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        iio.imwrite(
            tmp,
            frames,
            plugin="FFMPEG",
            fps=fps,
            codec=VIDEO_CODEC,
            pixelformat="rgb24",
            output_params=VIDEO_PARAMS,
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_video(path: str | Path) -> np.ndarray:
    """Decode a video to uint8 [F, H, W, 3] RGB."""
    return iio.imread(path, plugin="FFMPEG")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def export_dataset(out_dir: str | Path, split: str, n: int, start: int = 0, captions: int | None = None) -> Path:
    """Render clips start .. start+n-1 of `split` into `out_dir`; returns the metadata path.

    metadata.jsonl is rewritten with exactly these n rows (use one folder per split). ``captions``: only the
    first ``captions`` rows keep their detailed caption (default: all). A clip already written is kept, so a
    stopped export continues where it was (the clips are a function of their seeds).
    """
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (seed, scene) in enumerate(iter_split(split, n, start)):
        video = f"videos/{seed}.mp4"
        if not (out / video).exists():  # written whole or not at all (write_video)
            write_video(out / video, render(scene))
        row = {
            "video": video,
            "prompt": brief_prompt(scene),
            "caption": detailed_caption(scene) if captions is None or k < captions else "",
            "seed": seed,
            "split": split,
        }
        rows.append(json.dumps(row))
    metadata = out / "metadata.jsonl"
    _write_text(metadata, "".join(f"{r}\n" for r in rows))
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a ShapesWorld split (videos + metadata.jsonl).")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--n", type=int, required=True, help="number of clips")
    parser.add_argument("--start", type=int, default=0, help="index of the first clip in the split")
    parser.add_argument("--captions", type=int, help="keep the detailed caption of the first N clips only")
    args = parser.parse_args(argv)
    if args.captions is not None and not 0 <= args.captions <= args.n:
        parser.error(f"--captions must be between 0 and --n ({args.n}), got {args.captions}")
    path = export_dataset(args.out, args.split, args.n, args.start, args.captions)
    print(f"wrote {args.n} clips of {args.split!r} to {path.parent}")


if __name__ == "__main__":
    main()
