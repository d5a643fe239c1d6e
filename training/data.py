"""Training data: the general folder format, the precomputed cache, and (seed, step)-determined batches.

A dataset is a folder holding ``metadata.jsonl`` with one row per clip::

    {"video": "videos/0.mp4", "prompt": "a red circle moves right", "caption": "a large red circle at ..."}

A row may have no detailed caption (``"caption": ""``, or no key): most video comes with a brief prompt only.
Such a row conditions on its prompt, and a stage whose text target is the caption learns its prompt there.

``precompute`` reads every clip once, fits it to the nearest fixed ``[frames, height, width]`` bucket, and
caches what training needs so that the loop never runs the VAE or the text encoder:

    latents/{F}x{H}x{W}     [N_b, C, f, h, w]  normalised VAE latents (the transformer's space)
    index/{F}x{H}x{W}       [N_b]              row of each clip in the metadata
    prompt_embeds           [N, L_c, D]        UMT5 embeddings of the prompt (zero past its length)
    caption_embeds          [N, L_c, D]        ... of the detailed caption
    empty_embed             [1, L_c, D]        ... of the empty prompt (the dropped / unconditional slot)
    prompt_ids, caption_ids [N, L]             text-stream ids (ending with </s>), padded with the pad id
    has_caption             [N]                whether the row has a detailed caption

    python -m training.data --data runs/data/train --components runs/components \
        --out runs/cache/train.safetensors
"""

import argparse
import json
import os
import shutil
import time
from functools import partial
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from univigu.durable import replace_file, replace_with
from univigu.latents import encode_frames
from univigu.pipeline_text import encode_texts, text_stream_ids
from univigu.video_io import fit_video, read_video

from .components import load_components

DEFAULT_BUCKETS = ((17, 64, 64),)


def read_metadata(data_dir: str | os.PathLike) -> list[dict]:
    """Rows of ``data_dir/metadata.jsonl``; each must have ``video`` and ``prompt`` (``caption`` "" when absent)."""
    rows = []
    with open(Path(data_dir) / "metadata.jsonl") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = {"video", "prompt"} - set(row)
            if missing:
                raise ValueError(f"metadata.jsonl line {n} lacks {sorted(missing)}")
            rows.append({**row, "caption": row.get("caption") or ""})
    return rows


def bucket_for(frames: np.ndarray, buckets) -> tuple[int, int, int]:
    """The bucket nearest the clip's aspect ratio, preferring ones it has enough frames for."""
    f, h, w = frames.shape[:3]
    return min(buckets, key=lambda b: (b[0] > f, abs(np.log((b[2] / b[1]) / (w / h))), -b[0]))


def read_frames(path) -> np.ndarray:
    """uint8 [F, H, W, 3] with one ffmpeg call (faster than probing first); else univigu's reader."""
    try:
        frames = iio.imread(path, plugin="FFMPEG")
        if frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8:
            return frames
    except Exception:
        pass
    return read_video(path)[0]


def load_clips(data_dir, rows, size: tuple[int, int, int]) -> np.ndarray:
    """uint8 [N, F, H, W, 3]: the clips of ``rows`` fitted to one size."""
    return np.stack([fit_video(read_frames(Path(data_dir) / r["video"]), *size)[0] for r in rows])


@torch.no_grad()
def embed_texts(tokenizer, text_encoder, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """UMT5 embeddings [N, L, D] of ``texts``, made as the pipeline makes them (``encode_texts``)."""
    return torch.cat(
        [encode_texts(tokenizer, text_encoder, texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    )


@torch.no_grad()
def precompute(
    data_dir: str,
    components_dir: str,
    out_path: str,
    buckets=DEFAULT_BUCKETS,
    max_text_len: int | None = None,
    batch_size: int = 16,
    part_size: int = 1024,
) -> Path:
    """Encode the dataset at ``data_dir`` with the components; write the cache atomically to ``out_path``.

    Latents are written ``part_size`` clips at a time into ``{out_path}.parts/``: a run stopped part-way
    continues after its last whole part and writes the same cache as an unbroken one; the parts go once the
    cache is written."""
    tokenizer, text_encoder, vae = load_components(components_dir)
    max_text_len = max_text_len or tokenizer.model_max_length
    rows = read_metadata(data_dir)
    buckets = [tuple(int(v) for v in b) for b in buckets]
    keys = ["x".join(map(str, b)) for b in buckets]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(exist_ok=True)
    settings = json.dumps(
        {
            "data": str(Path(data_dir).resolve()),
            "components": str(Path(components_dir).resolve()),
            "rows": len(rows),
            "buckets": buckets,
            "batch_size": batch_size,
            "part_size": part_size,
        }
    )
    if (parts / "settings.json").exists() and (parts / "settings.json").read_text() != settings:
        raise ValueError(f"{parts} holds the parts of another cache (other data or components): delete it")
    replace_file(parts / "settings.json", settings)

    # 1. Clips -> buckets -> latents, a part at a time: bounded memory, and a stopped run resumes
    start = time.time()
    for first in range(0, len(rows), part_size):
        part = parts / f"{first // part_size:05d}.safetensors"
        if part.exists():
            continue
        pending: dict[tuple, list] = {b: [] for b in buckets}
        index: dict[tuple, list] = {b: [] for b in buckets}
        for n in range(first, min(first + part_size, len(rows))):
            frames = read_frames(Path(data_dir) / rows[n]["video"])
            b = bucket_for(frames, buckets)
            pending[b].append(fit_video(frames, *b)[0])
            index[b].append(n)
        tensors = {}
        for b, key in zip(buckets, keys):
            if index[b]:
                tensors[f"latents/{key}"] = encode_frames(vae, np.stack(pending[b]), batch_size).contiguous()
                tensors[f"index/{key}"] = torch.tensor(index[b], dtype=torch.long)
        replace_with(part, partial(save_file, tensors))
        done = min(first + part_size, len(rows))
        print(f"precompute: {done}/{len(rows)} clips ({time.time() - start:.0f}s)", flush=True)
    written = [load_file(str(parts / f"{k:05d}.safetensors")) for k in range(-(-len(rows) // part_size))]

    # 2. The parts joined, and the texts
    tensors = {}
    for key in keys:
        held = [w for w in written if f"index/{key}" in w]
        if held:
            tensors[f"latents/{key}"] = torch.cat([w[f"latents/{key}"] for w in held])
            tensors[f"index/{key}"] = torch.cat([w[f"index/{key}"] for w in held])
    prompts, captions = [r["prompt"] for r in rows], [r["caption"] for r in rows]
    tensors["prompt_embeds"] = embed_texts(tokenizer, text_encoder, prompts)
    tensors["caption_embeds"] = embed_texts(tokenizer, text_encoder, captions)
    tensors["empty_embed"] = embed_texts(tokenizer, text_encoder, [""])
    tensors["prompt_ids"] = text_stream_ids(tokenizer, prompts, max_text_len, tokenizer.pad_token_id)
    tensors["caption_ids"] = text_stream_ids(tokenizer, captions, max_text_len, tokenizer.pad_token_id)
    tensors["has_caption"] = torch.tensor([bool(c.strip()) for c in captions])

    # 3. Atomic write; then the parts go
    meta = {"data_dir": str(data_dir), "components": str(components_dir), "num_clips": str(len(rows))}
    replace_with(out, partial(save_file, tensors, metadata=meta))
    shutil.rmtree(parts)
    print(f"precompute: cached {len(rows)} clips in {time.time() - start:.0f}s -> {out}")
    return out


def _mix(*values: int) -> int:
    """A seed from integers: the same inputs give the same stream on every machine and run."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3 & 0xFFFFFFFFFFFFFFFF
    return h >> 1


def step_generator(seed: int, step: int, micro: int, rank: int, stream: int) -> torch.Generator:
    """An RNG that depends only on (seed, step, micro-batch, rank, stream): resuming replays it exactly."""
    return torch.Generator().manual_seed(_mix(seed, step, micro, rank, stream))


class LatentCache:
    """The precomputed cache, served as batches that are a function of (seed, step, micro-batch, rank)."""

    def __init__(self, path: str | os.PathLike, rows: int = 0, caption_rows: int = -1):
        """``rows``: serve the first ``rows`` rows only (0: all); ``caption_rows``: of those, only the first
        ``caption_rows`` keep their detailed caption (-1: every row that has one)."""
        t = load_file(str(path))
        self.buckets = sorted(k.split("/", 1)[1] for k in t if k.startswith("latents/"))
        self.latents = {b: t[f"latents/{b}"] for b in self.buckets}
        self.index = {b: t[f"index/{b}"] for b in self.buckets}
        self.prompt_embeds, self.caption_embeds = t["prompt_embeds"], t["caption_embeds"]
        self.empty_embed = t["empty_embed"]
        self.prompt_ids, self.caption_ids = t["prompt_ids"], t["caption_ids"]
        # caches made before rows could lack a caption: every row has one
        self.has_caption = t.get("has_caption", torch.ones(len(self.prompt_ids), dtype=torch.bool))
        if rows:
            if rows > len(self.prompt_ids):
                raise ValueError(f"rows={rows} but {path} holds {len(self.prompt_ids)} clips")
            self.index = {b: i[i < rows] for b, i in self.index.items()}
            self.buckets = [b for b in self.buckets if len(self.index[b])]
            self.latents = {b: t[f"latents/{b}"][t[f"index/{b}"] < rows] for b in self.buckets}
        if caption_rows >= 0:
            self.has_caption = self.has_caption & (torch.arange(len(self.has_caption)) < caption_rows)
        sizes = torch.tensor([len(self.index[b]) for b in self.buckets], dtype=torch.float)
        self.bucket_probs = sizes / sizes.sum()

    def __len__(self) -> int:
        return sum(len(i) for i in self.index.values())

    def batch(self, batch_size: int, seed: int, step: int, micro: int = 0, rank: int = 0) -> dict:
        """A batch from one bucket: latents [B,C,f,h,w], embeds [B,L_c,D] x2, ids [B,L] x2, has_caption [B]."""
        gen = step_generator(seed, step, micro, rank, stream=0)
        b = self.buckets[int(torch.multinomial(self.bucket_probs, 1, generator=gen))]
        pick = torch.randint(0, len(self.index[b]), (batch_size,), generator=gen)
        rows = self.index[b][pick]
        return {
            "latents": self.latents[b][pick],
            "prompt_embeds": self.prompt_embeds[rows],
            "caption_embeds": self.caption_embeds[rows],
            "prompt_ids": self.prompt_ids[rows],
            "caption_ids": self.caption_ids[rows],
            "has_caption": self.has_caption[rows],
            "rows": rows,
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description="Cache VAE latents, prompt embeddings and token ids.")
    parser.add_argument("--data", required=True, help="folder with metadata.jsonl")
    parser.add_argument("--components", required=True, help="folder with tokenizer/, text_encoder/, vae/")
    parser.add_argument("--out", required=True, help="cache file (.safetensors)")
    parser.add_argument("--bucket", action="append", default=None, help="FxHxW, repeatable (default 17x64x64)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    buckets = [tuple(int(v) for v in b.split("x")) for b in args.bucket] if args.bucket else DEFAULT_BUCKETS
    try:
        precompute(args.data, args.components, args.out, buckets)
    except ValueError as error:  # a dataset row, or the parts of another cache
        parser.error(str(error))


if __name__ == "__main__":
    main()
