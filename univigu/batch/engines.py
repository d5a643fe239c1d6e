"""Running a job over its items with an engine, and the summary every engine reports.

:func:`run` holds the output's lock, skips the items already done, has the engine turn the rest into batches of
records (``local``: this process, batch after batch; ``ray``: :mod:`univigu.batch.ray_engine`), writes each batch
as a finished shard as it arrives, and assembles the metadata at the end. An engine only computes records; what is
written, and when, is the same for every engine.
"""

import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

from tqdm.auto import tqdm

from .shards import Output
from .work import Item, Record, prepare_all

ENGINES = ("local", "ray")


@dataclass
class Summary:
    noun: str = "captioned"  # what was done to an item: captioned, generated
    done: int = 0
    skipped: int = 0  # already in the output
    failed: int = 0  # could not be decoded or generated
    seconds: float = 0.0

    @property
    def per_minute(self) -> float:
        return 60 * self.done / self.seconds if self.seconds else 0.0

    def count(self, records: list[Record]) -> None:
        for record in records:
            if record.row is None:
                self.failed += 1
                print(f"skipped {record.key}: {record.error}", file=sys.stderr)
            else:
                self.done += 1

    def line(self) -> str:
        return (
            f"{self.noun} {self.done}, skipped {self.skipped} (already in the output), failed {self.failed}; "
            f"{self.per_minute:.1f} clips per minute"
        )

    def as_dict(self) -> dict:
        rate = round(self.per_minute, 2)
        return {self.noun: self.done, "skipped": self.skipped, "failed": self.failed, "clips_per_minute": rate}


def run(
    job, items: list[Item], out, engine: str = "local", batch_size: int = 1, progress: bool = True, **engine_options
) -> Summary:
    """Do ``job`` for the ``items`` not yet in the metadata file ``out``; returns the run's :class:`Summary`.

    ``engine_options`` go to the ray engine (``workers``, ``gpus_per_worker``). Raises
    :class:`univigu.durable.InUseError` naming its pid if another run is writing ``out``.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    output, start = Output(out), time.monotonic()
    summary = Summary(job.noun)
    with output.lock():
        done = output.open()
        todo = [item for item in items if item.key not in done]
        summary.skipped = len(items) - len(todo)
        if todo:  # nothing to do loads no model and starts no worker
            if engine == "ray":
                from .ray_engine import run_batches
            else:
                run_batches = run_local
            batches = run_batches(job, todo, batch_size=batch_size, progress=progress, **engine_options)
            with closing(batches):  # stopped (an error, ^C): the engine's workers stop with it
                for records in batches:
                    output.write_shard(records)
                    summary.count(records)
        output.merge([item.key for item in items])
    summary.seconds = time.monotonic() - start
    return summary


def merge(items: list[Item], out) -> int:
    """Assemble ``out`` from its finished shards alone (``--merge``); returns the rows added."""
    output = Output(out)
    with output.lock():
        output.open()
        return output.merge([item.key for item in items])


def run_local(job, items: list[Item], batch_size: int = 1, progress: bool = True) -> Iterator[list[Record]]:
    """The local engine: batches of ``items`` in this process, the pipeline loaded once, at the first item that
    prepares."""
    pipe = None
    with tqdm(total=len(items), unit="clip", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            ok, inputs, failed = prepare_all(job, batch)
            if ok and pipe is None:
                pipe = job.load()
            yield failed + (job.run(pipe, ok, inputs) if ok else [])
            bar.update(len(batch))
