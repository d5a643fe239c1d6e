"""A batch run's output, written exactly once: shards renamed into place whole, then assembled into the metadata.

Beside the metadata file ``OUT`` (``.../metadata.jsonl``, the format ``training.data`` reads):

- ``OUT.shards/<name>.jsonl``: one batch's records, a line each: ``{"row": {...}}``, or ``{"failed": key, "error":
  why}`` for an item that could not be decoded or generated. A shard is written under a temporary name, fsync'd
  and renamed into place when whole (:func:`univigu.durable.replace_file`), after the clips it names.
- ``OUT``: the rows, assembled by :meth:`Output.merge` at the end of a run (or by ``--merge`` alone): the rows
  already there, then each new row once, in the work list's order; written whole, then the merged shards go.
- ``failures.jsonl``: the items the last merged run could not do, ``{"video": key, "error": why}`` each.

A rerun skips every item with a row in ``OUT`` or in a finished shard; a killed writer leaves whole shards and
temporary files, which the next run removes. One writer at a time holds ``OUT``'s lock (:func:`output_lock`).
"""

import json
import os
import sys
import uuid
from pathlib import Path

from ..durable import cut_torn_line, exclusive_lock, fsync_dir, replace_file
from .work import Record


def output_lock(out: str | os.PathLike):
    """The one-writer lock of the output ``out`` (``<out>.lock``): every writer of a metadata file holds it."""
    busy = f"{out} is being written by another run (pid {{pid}}); wait for it to finish or stop it"
    return exclusive_lock(f"{out}.lock", busy)


def done_rows(out: Path) -> set[str]:
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


class Output:
    """The metadata file ``metadata``, its shards and its failures."""

    def __init__(self, metadata: str | os.PathLike):
        self.metadata = Path(metadata)
        self.folder = self.metadata.parent
        self.shards = self.folder / f"{self.metadata.name}.shards"
        self.failures = self.folder / "failures.jsonl"

    def lock(self):
        """Hold the output's one-writer lock (raises ``InUseError`` naming the holder's pid)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return output_lock(self.metadata)

    def open(self) -> set[str]:
        """Under the lock, before a run: a killed writer's temporary files removed; the keys already done."""
        for tmp in self.shards.glob("*.tmp-*"):
            tmp.unlink()
        return done_rows(self.metadata) | {row["video"] for row, _ in self._records() if row}

    def write_shard(self, records: list[Record]) -> Path | None:
        """Write ``records`` (and the clips they carry) as one finished shard; ``None`` when there are none."""
        lines = []
        for record in records:
            if record.row is None:
                lines.append(json.dumps({"failed": record.key, "error": record.error}))
                continue
            if record.clip:
                self._write_clip(record.key, record.clip)
            lines.append(json.dumps({"row": record.row}))
        if not lines:
            return None
        self.shards.mkdir(exist_ok=True)
        path = self.shards / f"{uuid.uuid4().hex}.jsonl"
        replace_file(path, "".join(line + "\n" for line in lines))
        return path

    def merge(self, order: list[str] | None = None) -> int:
        """Assemble the finished shards into the metadata file (under the lock); returns the rows added.

        New rows follow the keys' order in ``order`` (the work list), others after by key. Without shards
        nothing is rewritten."""
        shards = sorted(self.shards.glob("*.jsonl")) if self.shards.is_dir() else []
        if not shards:
            return 0
        done = done_rows(self.metadata)  # cuts a torn last line a killed appender left
        rows, failed = {}, {}
        for row, failure in self._records(shards):
            if row:
                rows.setdefault(row["video"], row)  # a row is a function of its item: a repeat is the same row
            else:
                failed[failure[0]] = failure[1]
        rank = {key: n for n, key in enumerate(order or [])}
        by_rank = lambda key: (rank.get(key, len(rank)), key)
        new = [rows[key] for key in sorted(set(rows) - done, key=by_rank)]
        old = self.metadata.read_text() if self.metadata.exists() else ""
        replace_file(self.metadata, old + "".join(json.dumps(row) + "\n" for row in new))
        failures = [{"video": k, "error": failed[k]} for k in sorted(set(failed) - set(rows) - done, key=by_rank)]
        if failures:
            replace_file(self.failures, "".join(json.dumps(f) + "\n" for f in failures))
        elif self.failures.exists():
            self.failures.unlink()  # the failures of an earlier run, done since
        for shard in shards:
            shard.unlink()
        if not any(self.shards.iterdir()):
            self.shards.rmdir()  # a finished run leaves the dataset alone
        fsync_dir(self.folder)
        return len(new)

    def _records(self, shards: list[Path] | None = None):
        """(row, None) or (None, (key, error)) for each record of the finished shards."""
        for shard in sorted(self.shards.glob("*.jsonl")) if shards is None else shards:
            for line in shard.read_text().splitlines():
                record = json.loads(line)
                yield (record["row"], None) if "row" in record else (None, (record["failed"], record["error"]))

    def _write_clip(self, key: str, data: bytes) -> None:
        path = self.folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        self.shards.mkdir(exist_ok=True)
        tmp = self.shards / f"{uuid.uuid4().hex}.clip.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
