"""The work of a batch run, the same for every engine: items, their ids and seeds, and the jobs that run them.

An :class:`Item` is one clip to caption or one prompt to generate from. Its ``key`` is the ``video`` of the row it
becomes (relative to the metadata file: what a resumed run looks up), and its seed is drawn from the run's seed and
the item's stable id by :func:`item_seed`, so what an item becomes depends on the item alone, never on the batch it
ran in, the worker, or the order.

A job (:class:`CaptionJob`, :class:`GenerateJob`) is a small picklable description: :meth:`load` builds the pipeline
(once per process or actor), :meth:`prepare` decodes an item's input on a CPU (clips are fitted to the model's size
there), :meth:`run` turns a batch of prepared items into :class:`Record` s. A record is a row, or the failure of an
item that could not be decoded or generated (recorded, never fatal).
"""

import glob
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..flows import DiscreteTextFlow, text_flow_for
from ..loading import load_pipeline
from ..offload import Placement
from ..pipeline_text import PromptError, check_words
from ..settings import CAPTION_STEPS, CAPTION_VIDEO_CACHE_INTERVAL, GENERATION_STEPS, GUIDANCE_SCALE
from ..video_io import VIDEO_EXTENSIONS, VideoError, fit_video, read_video, write_video

SEED_SPACE = 2**32  # the command line's --seed range: a row's seed can be given back to `univigu t2v --seed`


def item_seed(seed: int, item_id: str) -> int:
    """The seed of the item ``item_id`` in a run seeded ``seed``: a hash of both, in ``0 .. 2**32 - 1``."""
    digest = hashlib.sha256(f"{seed}\0{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_SPACE


@dataclass(frozen=True)
class Item:
    key: str  # the row's "video", relative to the metadata file
    source: str  # the clip's path, or the prompt
    seed: int


@dataclass
class Record:
    key: str
    row: dict | None = None  # the metadata row; None for a failure
    error: str = ""  # why the item failed
    clip: bytes = b""  # a generated clip's encoded file, written beside the metadata as ``key``


def clip_key(clip: str | os.PathLike, metadata: str | os.PathLike) -> str:
    """A clip's row key: its path relative to the metadata file's folder."""
    return Path(os.path.relpath(Path(clip).resolve(), Path(metadata).parent.resolve())).as_posix()


def find_clips(videos: str) -> list[Path]:
    """The clips a ``--videos`` argument names: every video file under a folder, or a glob's matches, sorted."""
    if os.path.isdir(videos):
        paths = [p for p in Path(videos).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    else:
        paths = [Path(p) for p in glob.glob(videos, recursive=True) if os.path.isfile(p)]
    if not paths:
        raise FileNotFoundError(
            f"no video files in {videos!r}: pass a folder holding {', '.join(VIDEO_EXTENSIONS)} files or a glob"
        )
    return sorted(paths)


def clip_items(clips: list[Path], metadata: str | os.PathLike, seed: int) -> list[Item]:
    """The items of a folder caption: each clip, its id the row key (so resuming and seeding use one name)."""
    keys = [clip_key(c, metadata) for c in clips]
    return [Item(k, str(c), item_seed(seed, k)) for c, k in zip(clips, keys)]


def prompt_items(path: str | os.PathLike, seed: int) -> list[Item]:
    """The items of a prompts file: one prompt per line, or (a ``.jsonl`` file) objects with ``prompt`` and an
    optional ``seed``. An item's id is its line's index (0-based, blank lines counted and skipped); its clip is
    ``videos/<index>.mp4`` beside the metadata file."""
    jsonl = os.fspath(path).endswith(".jsonl")
    items = []
    with open(path) as f:
        for index, line in enumerate(f):
            if not line.strip():
                continue
            own = None
            if jsonl:
                try:
                    obj = json.loads(line)
                    prompt, own = obj["prompt"], obj.get("seed")
                except (ValueError, KeyError, TypeError) as err:
                    raise ValueError(f"{path} line {index + 1} is not an object with a prompt ({err})") from None
                if not isinstance(prompt, str) or (own is not None and not _is_seed(own)):
                    raise ValueError(f"{path} line {index + 1}: prompt must be text and seed 0 to {SEED_SPACE - 1}")
            else:
                prompt = line.strip()
            own = own if own is not None else item_seed(seed, str(index))
            items.append(Item(f"videos/{index:06d}.mp4", prompt, own))
    if not items:
        raise ValueError(f"{path} holds no prompts; write one per line")
    return items


def _is_seed(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < SEED_SPACE


@dataclass(frozen=True)
class ModelSpec:
    """Which pipeline to load and where: what ``univigu``'s model flags say, resolved in the process that loads."""

    model: str | None = None
    dtype: str = "float32"
    device: str | None = None
    offload: str = "none"
    vae_tiling: bool = False

    def load(self):
        pipe = load_pipeline(self.model, Placement(self.device, self.dtype, self.offload, self.vae_tiling))
        pipe.set_progress_bar_config(disable=True)
        return pipe


def caption_clips(pipe, clips: list[np.ndarray], seeds: list[int], **kwargs) -> list[str]:
    """Captions of ``clips``, each from its own seed. Greedy captions from the mask source draw nothing at random and
    a batch equals one by one (``UniViGUPipeline.caption``), so they run as one batch; else clip by clip."""
    flow = text_flow_for(pipe.transformer)
    if isinstance(flow, DiscreteTextFlow) and flow.source == "mask" and not kwargs.get("text_temperature"):
        return pipe.caption(list(clips), seed=seeds[0], **kwargs).text
    return [pipe.caption(clip, seed=seed, **kwargs).text for clip, seed in zip(clips, seeds)]


@dataclass(frozen=True)
class CaptionJob:
    """Caption clips into rows ``{"video", "prompt", "caption"}`` (``prompt`` repeats the caption, as
    a captioned folder has no separate brief prompt; training conditions on the prompt slot and denoises either)."""

    model: ModelSpec = field(default_factory=ModelSpec)
    steps: int = CAPTION_STEPS
    prompt: str | None = None
    video_cache_interval: int = CAPTION_VIDEO_CACHE_INTERVAL
    size: tuple[int, int, int] | None = None  # (frames, height, width) clips are fitted to as they are decoded
    decodes = True  # prepare() reads a file: a CPU stage of its own
    noun = "captioned"

    def load(self):
        return self.model.load()

    def prepare(self, item: Item) -> np.ndarray:
        """The clip's frames uint8 [F, H, W, 3], fitted to ``size``; raises ``VideoError``."""
        frames, _ = read_video(item.source)
        return fit_video(frames, *self.size)[0] if self.size else frames

    def run(self, pipe, items: list[Item], inputs: list) -> list[Record]:
        texts = caption_clips(
            pipe,
            inputs,
            [item.seed for item in items],
            prompt=self.prompt,
            num_inference_steps=self.steps,
            video_cache_interval=self.video_cache_interval,
        )
        return [Record(i.key, {"video": i.key, "prompt": t, "caption": t}) for i, t in zip(items, texts)]


@dataclass(frozen=True)
class GenerateJob:
    """Generate a clip per prompt into rows ``{"video", "prompt", "caption", "seed"}`` (``caption`` repeats the
    prompt); ``univigu t2v --prompt P --seed S`` with the run's other flags remakes the row's clip."""

    model: ModelSpec = field(default_factory=ModelSpec)
    steps: int = GENERATION_STEPS
    guidance: float = GUIDANCE_SCALE
    size: tuple[int | None, int | None, int | None] = (None, None, None)  # (frames, height, width)
    cache: str | None = None
    decodes = False
    noun = "generated"

    def load(self):
        pipe = self.model.load()
        pipe.set_step_cache(self.cache)
        return pipe

    def prepare(self, item: Item) -> None:
        return None

    def run(self, pipe, items: list[Item], inputs: list) -> list[Record]:
        records = []
        for item in items:
            try:  # the command line refuses such a prompt: a row would not be remade by it
                check_words(pipe.tokenizer, item.source)
            except PromptError as err:
                records.append(Record(item.key, error=str(err)))
                continue
            frames, height, width = self.size
            out = pipe.text_to_video(
                item.source,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                num_frames=frames,
                height=height,
                width=width,
                seed=item.seed,
            )
            row = {"video": item.key, "prompt": item.source, "caption": item.source, "seed": item.seed}
            records.append(Record(item.key, row, clip=encode_clip(out.frames, pipe.config.fps)))
        return records


def encode_clip(frames: np.ndarray, fps: float) -> bytes:
    """An mp4's bytes, as ``write_video`` writes the file (so the command line's clip and a dataset's match)."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_video(os.path.join(folder, "clip.mp4"), frames, fps=fps)
        return Path(path).read_bytes()


def prepare_all(job, items: list[Item]) -> tuple[list[Item], list, list[Record]]:
    """(the items that prepared, their inputs, a failure record per item that did not)."""
    ok, inputs, failed = [], [], []
    for item in items:
        try:
            inputs.append(job.prepare(item))
            ok.append(item)
        except (VideoError, OSError) as err:
            failed.append(Record(item.key, error=" ".join(str(err).split())))
    return ok, inputs, failed
