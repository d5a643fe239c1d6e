"""The ray engine: a job's items through one Ray Data pipeline, on this machine or a cluster.

    items (from_items) -> prepare, in CPU tasks (decode and fit each clip) -> an actor pool (ActorPoolStrategy)
    whose actors load the pipeline once and run batches -> records, streamed back to the driver

The driver writes each batch as a finished shard (:func:`univigu.batch.engines.run`). Placement is Ray's own: an
actor asks for ``num_gpus`` (or, on a CPU-only cluster, a share of a CPU and runs torch on one thread). Faults are
Ray's too: a dead actor is restarted and its batch redone (``max_restarts``, ``max_task_retries``), and a batch's
records reach the driver once, when its task has finished.

Ray is optional (``pip install 'univigu[ray]'``) and imported only when this engine runs. Every node needs univigu
installed, the clips to caption at the same paths, and the model at the same path or hub id.
"""

import json
import socket
import warnings
from collections.abc import Iterator

import numpy as np

from .work import Item, Record, prepare_all

INSTALL = "pip install 'univigu[ray]' (or pip install 'ray[data]==2.60.0')"
# An actor's CPU share. Measured on a 2-core machine: actors asking for a whole CPU each take both and the prepare
# tasks wait forever; at 0.5 (and a quarter for a prepare task) every stage can run (shared/RAY-ON-TWO-CORES.md).
ACTOR_CPUS = 0.5
PREPARE_CPUS = 0.25
RESTARTS = 4  # a dead actor is restarted, and its batch retried, this many times before the run fails


def require_ray() -> None:
    """Raise a one-line ``ValueError`` saying how to install Ray when it is missing."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError(f"the ray engine needs Ray, which is not installed: {INSTALL}") from None


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (``host:port``, ``ray://...`` or ``auto``), or start Ray on this machine;
    a Ray this process already started is used as it is. An address nothing answers at is a one-line ``ValueError``.
    """
    require_ray()
    import ray

    if address and address != "auto" and "://" not in address:
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as err:
            raise ValueError(
                f"nothing answers at {address} ({err}); start a cluster with 'ray start --head' or pass its address"
            ) from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ValueError(f"cannot join a Ray cluster at {address}: {str(err).splitlines()[0]}") from None


def run_batches(
    job, items: list[Item], batch_size: int = 1, progress: bool = True, workers: int = 1, gpus_per_worker: float = 0.0
) -> Iterator[list[Record]]:
    """Yield the records of ``items``, a batch at a time as the actors finish them (Ray Data's progress bars on
    the driver). ``workers`` actors, each with ``gpus_per_worker`` GPUs (0: a CPU actor, one torch thread)."""
    connect()
    import ray.data
    from ray.data import ActorPoolStrategy

    ray.data.DataContext.get_current().enable_progress_bars = progress
    rows = [{"key": i.key, "source": i.source, "seed": i.seed} for i in items]
    ds = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // batch_size))  # a block a batch: all actors busy
    if job.decodes:
        ds = ds.map_batches(
            _prepare, fn_kwargs={"job": job}, batch_size=batch_size, num_cpus=PREPARE_CPUS, concurrency=workers
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*ray_remote_args")
        ds = ds.map_batches(
            _Worker,
            fn_constructor_kwargs={"job": job, "one_thread": not gpus_per_worker},
            compute=ActorPoolStrategy(size=workers),
            batch_size=batch_size,
            num_cpus=ACTOR_CPUS,
            num_gpus=gpus_per_worker or None,
            max_restarts=RESTARTS,  # Ray 2.60 takes these as remote args only, and warns that it may not later
            max_task_retries=RESTARTS,
        )
    batches = ds.iter_batches(batch_size=None, batch_format="numpy")
    try:
        for batch in batches:
            yield [
                Record(str(key), json.loads(row) if row else None, str(error), bytes(clip))
                for key, row, error, clip in zip(batch["key"], batch["row"], batch["error"], batch["clip"])
            ]
    finally:
        getattr(batches, "close", lambda: None)()  # a stopped driver stops the pipeline (its actors) now


def _items(batch: dict) -> list[Item]:
    return [Item(str(k), str(s), int(n)) for k, s, n in zip(batch["key"], batch["source"], batch["seed"])]


def _prepare(batch: dict, job) -> dict:
    """A CPU task: each item's input (a clip's fitted frames), or why it has none."""
    items = _items(batch)
    ok, inputs, failed = prepare_all(job, items)
    errors = {record.key: record.error for record in failed}
    blank = np.zeros((*job.size, 3) if job.size else (1, 1, 1, 3), np.uint8)  # a failed item's frames
    frames = iter(inputs)
    frames = [blank if item.key in errors else next(frames) for item in items]
    batch["frames"] = np.stack(frames) if job.size else _objects(frames)  # fitted: one shape
    batch["error"] = _objects([errors.get(item.key, "") for item in items])
    return batch


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


class _Worker:
    """An actor: the pipeline loaded once, then batch after batch."""

    def __init__(self, job, one_thread: bool):
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        if one_thread:
            torch.set_num_threads(1)
        diffusers_logging.disable_progress_bar()  # loading's bars, once per actor, would bury Ray's
        transformers_logging.disable_progress_bar()
        self.job, self.pipe = job, job.load()

    def __call__(self, batch: dict) -> dict:
        items = _items(batch)
        errors = batch["error"] if "error" in batch else [""] * len(items)
        frames = batch["frames"] if "frames" in batch else [None] * len(items)
        ok = [(item, x) for item, x, error in zip(items, frames, errors) if not error]
        ok = [(item, None if x is None else np.array(x)) for item, x in ok]  # Ray's arrays are read-only
        records = [Record(item.key, error=str(e)) for item, e in zip(items, errors) if e]
        if ok:
            records += self.job.run(self.pipe, [item for item, _ in ok], [x for _, x in ok])
        return {
            "key": _objects([r.key for r in records]),
            "row": _objects([json.dumps(r.row) if r.row is not None else "" for r in records]),
            "error": _objects([r.error for r in records]),
            "clip": _objects([r.clip for r in records]),
        }
