"""Captioning a folder of clips into a training dataset's ``metadata.jsonl``.

Each clip becomes one row ``{"video": path relative to the metadata file, "prompt": ..., "caption": ...}``, the
format ``training.data`` reads. A captioned folder has no separate brief prompt, so ``prompt`` repeats the
caption (training conditions on the prompt slot and denoises either text).

The run is resumable: clips already named in the output are skipped. Each row is appended with one ``write``
to a file opened for appending and fsync'd before the next clip, so an interrupted run leaves whole rows (a torn
last line is dropped on resume). One run writes an output at a time: another into the same file is refused, naming
the pid of the one writing (the lock ``<out>.lock``). A clip that cannot be decoded is reported on stderr and the
run goes on.
"""

import glob
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .durable import append_line, cut_torn_line, exclusive_lock
from .video_io import VIDEO_EXTENSIONS, VideoError, read_video


@dataclass
class FolderSummary:
    captioned: int = 0
    skipped: int = 0  # already in the output
    failed: int = 0  # could not be decoded

    def line(self) -> str:
        return f"captioned {self.captioned}, skipped {self.skipped} (already in the output), failed {self.failed}"


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


def _done_rows(out: Path) -> set[str]:
    """The ``video`` of every whole row already in ``out``; a torn last line (no newline) is cut off."""
    if not out.exists():
        return set()
    if cut_torn_line(out):
        print(f"warning: dropped a torn last line of {out}", file=sys.stderr)
    data = out.read_bytes()
    done = set()
    for n, line in enumerate(data.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            done.add(json.loads(line)["video"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{out} line {n} is not a metadata row ({err}); fix or move the file") from err
    return done


def _readable(clips: list[Path], summary: FolderSummary) -> Iterator[tuple[Path, object]]:
    for clip in clips:
        try:
            frames, _ = read_video(clip)
        except VideoError as err:
            summary.failed += 1
            print(f"skipped {clip}: {err}", file=sys.stderr)
            continue
        yield clip, frames


def caption_folder(
    caption: Callable[[list], list[str]],
    clips: list[Path],
    out: str | os.PathLike,
    batch_size: int = 1,
    progress: bool = True,
) -> FolderSummary:
    """Caption ``clips`` not yet in ``out`` in batches of ``batch_size``, appending one row per clip.

    ``caption`` maps a list of frame arrays [F, H, W, 3] to their captions (``UniViGUPipeline.caption`` on a list).
    Raises :class:`univigu.durable.InUseError` naming its pid if another run is writing ``out``.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        return _caption_folder(caption, clips, out, batch_size, progress)


def output_lock(out: str | os.PathLike):
    """The one-writer lock of the output ``out`` (``<out>.lock``): every writer of a metadata file holds it."""
    busy = f"{out} is being written by another run (pid {{pid}}); wait for it to finish or stop it"
    return exclusive_lock(f"{out}.lock", busy)


def _caption_folder(caption, clips: list[Path], out: Path, batch_size: int, progress: bool) -> FolderSummary:
    summary = FolderSummary()
    done = _done_rows(out)
    todo = []
    for clip in clips:
        rel = Path(os.path.relpath(clip.resolve(), out.parent.resolve())).as_posix()
        if rel in done:
            summary.skipped += 1
        else:
            todo.append((clip, rel))
    names = {clip: rel for clip, rel in todo}
    bar = tqdm(total=len(todo), unit="clip", disable=not progress, file=sys.stderr)
    batch = []

    def flush():
        for (clip, _), text in zip(batch, caption([frames for _, frames in batch])):
            append_line(out, json.dumps({"video": names[clip], "prompt": text, "caption": text}))
            summary.captioned += 1
        bar.update(len(batch))
        batch.clear()

    for clip, frames in _readable([c for c, _ in todo], summary):
        batch.append((clip, frames))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    bar.update(summary.failed)
    bar.close()
    return summary
