"""The studio's server side without the page: one loaded pipeline, input checks, streamed runs, run history.

Everything here speaks in short messages a user can act on: :class:`UserError` for bad input,
:class:`univigu.Cancelled` for a stopped run; ``errors.py`` turns them into notices. :class:`Studio` gathers
the model's placement and runs (here), input checks (``checks.py``), uploaded clips (``uploads.py``) and
per-step previews (``step_previews.py``); the run history is ``runs.py``.
"""

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..caching import describe_cache
from ..loading import load_pipeline
from ..offload import (
    DTYPES,
    OFFLOAD_MODES,
    apply_offload,
    default_device,
    device_requirements,
    dtype_requirements,
    offload_requirements,
)
from ..pipeline_output import UniViGUPipelineOutput
from ..pipeline_univigu import Cancelled
from ..trajectory import TrajectoryStep
from ..video_io import write_video
from .checks import InputChecks, Limits, UserError
from .preview import projection_for
from .runs import RunRecord, RunStore
from .step_previews import StepPreviews
from .uploads import UploadChecks

log = logging.getLogger("univigu.studio")

PREVIEW_MODES = ("auto", "decode", "project")


@dataclass
class Settings:
    device: str
    dtype: str = "float32"
    offload: str = "none"
    vae_tiling: bool = False
    preview: str = "auto"
    step_cache: str = "none"  # univigu.caching's NAME[:VALUE], for text-to-video and joint generation


class Studio(InputChecks, UploadChecks, StepPreviews):
    """The loaded model and everything the page asks of it."""

    def __init__(
        self,
        model: str,
        settings: Settings,
        output_dir: str,
        limits: Limits | None = None,
        pipe=None,
        concurrency: int = 1,
    ):
        self.model = model
        self.concurrency = concurrency  # runs at once (they share the model's lock: more only queue inside)
        self.settings = settings
        self.output_dir = output_dir
        self.limits = limits or Limits()
        self.store = RunStore()
        self.lock = threading.Lock()  # one user of the pipeline's modules at a time (the VAE keeps state)
        os.makedirs(output_dir, exist_ok=True)
        self.pipe = pipe if pipe is not None else self._load(settings)

    # ---------------------------------------------------------------------------------------------
    # Model and settings
    def _load(self, settings: Settings):
        self._check_settings(settings)
        if self.model == "tiny":  # development: random weights (deterministic), nothing to load
            from ..tiny import tiny_pipeline

            pipe = tiny_pipeline().to(DTYPES[settings.dtype])
        else:
            pipe = load_pipeline(self.model, torch_dtype=DTYPES[settings.dtype])
        apply_offload(pipe, settings.offload, settings.device, DTYPES[settings.dtype], vae_tiling=settings.vae_tiling)
        pipe.set_progress_bar_config(disable=True)
        pipe.set_step_cache(settings.step_cache)
        return pipe

    @staticmethod
    def _check_settings(settings: Settings) -> None:
        problems = [
            p
            for p in (
                device_requirements(settings.device),
                dtype_requirements(settings.dtype, settings.device),
                offload_requirements(settings.offload, settings.device),
                None if settings.preview in PREVIEW_MODES else f"unknown preview mode {settings.preview!r}",
                _step_cache_problem(settings.step_cache),
            )
            if p
        ]
        if problems:
            raise UserError("; ".join(problems))

    def apply_settings(self, settings: Settings, timeout: float = 600) -> str:
        """Reload the model with new placement settings, or switch its step cache (a run in progress finishes
        first)."""
        self._check_settings(settings)
        settings = replace(settings, step_cache=describe_cache(settings.step_cache))
        placement = (settings.device, settings.dtype, settings.offload, settings.vae_tiling)
        current = (self.settings.device, self.settings.dtype, self.settings.offload, self.settings.vae_tiling)
        if placement != current:
            if not self.lock.acquire(timeout=timeout):
                raise UserError("the model is busy with a run; apply the settings when it finishes")
            try:
                old, self.pipe = self.pipe, None
                del old
                try:
                    self.pipe = self._load(settings)
                    projection_for(self.pipe)
                except Exception:
                    log.exception("could not apply %s; restoring %s", settings, self.settings)
                    self.pipe = self._load(self.settings)
                    raise
            finally:
                self.lock.release()
        elif settings.step_cache != self.pipe.step_cache:
            if not self.lock.acquire(timeout=timeout):
                raise UserError("the model is busy with a run; apply the settings when it finishes")
            try:
                self.pipe.set_step_cache(settings.step_cache)
            finally:
                self.lock.release()
        self.settings = settings
        return (
            f"device {settings.device}, {settings.dtype}, offload {settings.offload}"
            f"{', VAE tiling' if settings.vae_tiling else ''}, previews {settings.preview}, "
            f"step cache {settings.step_cache}"
        )

    # ---------------------------------------------------------------------------------------------
    # What the model supports
    @property
    def model_name(self) -> str:
        """The model as visitors see it: a hub id as given, a local folder by its name, never its path.

        A folder in the hub's cache (``.../models--org--name/snapshots/<revision>``) is named by its hub id.
        """
        if not os.path.exists(self.model):
            return self.model  # a hub id, or "tiny"
        parts = os.path.normpath(os.path.abspath(self.model)).split(os.sep)
        if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
            return parts[-3].removeprefix("models--").replace("--", "/")
        return parts[-1]

    @property
    def frames_step(self) -> int:
        return self.pipe.vae_scale_factor_temporal

    @property
    def size_step(self) -> int:
        return self.pipe.vae_scale_factor_spatial * self.pipe.transformer.config.patch_size[1]

    @property
    def default_size(self) -> tuple[int, int, int]:
        c = self.pipe.config
        return int(c.default_num_frames), int(c.default_height), int(c.default_width)

    @property
    def fps(self) -> float:
        return float(getattr(self.pipe.config, "fps", 8) or 8)

    # ---------------------------------------------------------------------------------------------
    # Runs
    def stream(
        self,
        session: str,
        call: Callable[[Callable], UniViGUPipelineOutput],
        record: RunRecord | None = None,
        joined: int | None = None,
    ) -> Iterator[tuple[str, object]]:
        """Run ``call(callback)`` in a worker thread; yield ("step", TrajectoryStep) ... ("done", output).

        Raises what the run raised (``Cancelled`` when :meth:`RunStore.cancel` or the consumer stopped it, or
        at once when the session cancelled since the run joined the queue at generation ``joined``).
        """
        switch = threading.Event()
        events: queue.Queue = queue.Queue()

        def callback(record: TrajectoryStep):
            record.video_latents = None  # the scrubber shows the predicted clip (video_x0); halve the memory
            events.put(("step", record))
            if switch.is_set():
                raise Cancelled(f"stopped after step {record.step} of {record.num_steps}")

        def work():
            outcome = "failed"
            try:
                with self.lock:
                    if switch.is_set():
                        raise Cancelled("stopped before it started")
                    if record is not None:
                        log.info("run #%d started (%s, %d steps)", record.run_id, record.task, record.num_steps)
                    projection_for(self.pipe)  # fitted once per VAE; live previews use it
                    output = call(callback)
                outcome = "done"
                events.put(("done", output))
            except BaseException as err:  # handed to the consumer, which decides what the user sees
                outcome = f"cancelled: {err}" if isinstance(err, Cancelled) else f"failed: {type(err).__name__}"
                events.put(("error", err))
            finally:  # here, not in the consumer: a run whose page went away is still logged when it stops
                if record is not None:
                    log.info("run #%d ended (%s)", record.run_id, outcome)

        self.store.register(session, switch, record, joined)
        worker = threading.Thread(target=work, name="univigu-run", daemon=True)
        worker.start()
        try:
            while True:
                kind, payload = events.get()
                if kind == "error":
                    raise payload
                yield kind, payload
                if kind == "done":
                    return
        finally:
            switch.set()  # a consumer that stops listening stops the run at its next step
            self.store.unregister(session, switch)

    def new_record(self, task: str, prompt: str | None, seed: int, steps: int) -> RunRecord:
        return RunRecord(run_id=self.store.new_id(), task=task, prompt=prompt, seed=seed, num_steps=steps, fps=self.fps)

    def save_video(self, record: RunRecord, frames: np.ndarray, suffix: str = "") -> str:
        path = os.path.join(self.output_dir, f"run{record.run_id:04d}-{record.task}{suffix}.mp4")
        return write_video(path, frames, fps=record.fps)


def _step_cache_problem(spec: str) -> str | None:
    try:
        describe_cache(spec)
    except ValueError as err:
        return f"step cache: {err}"
    return None


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(1, torch.cuda.device_count())]
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        devices.append("xpu")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


__all__ = [
    "DTYPES",
    "OFFLOAD_MODES",
    "Limits",
    "RunRecord",
    "RunStore",
    "Settings",
    "Studio",
    "UserError",
    "available_devices",
    "default_device",
]
