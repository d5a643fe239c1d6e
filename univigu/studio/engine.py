"""The studio's server side without the page: one placed pipeline, checked and streamed runs, run history.

Everything here speaks in short messages a user can act on: :class:`~univigu.studio.checks.UserError` for bad
input, :class:`univigu.Cancelled` for a stopped run; ``errors.py`` turns them into notices. :class:`Studio` holds
the pipeline and its lock and is composed of small objects, each given what it uses: ``checks``
(:class:`InputChecks`), ``uploads`` (:class:`UploadChecks`), ``previews`` (:class:`StepPreviews`) and ``store``
(:class:`RunStore`). A run's request is checked once (:meth:`Studio.check`), then streamed (:meth:`Studio.stream`).
"""

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..caching import describe_cache
from ..loading import load_pipeline
from ..offload import DTYPES, Placement
from ..pipeline_output import UniViGUPipelineOutput
from ..pipeline_univigu import Cancelled
from ..trajectory import TrajectoryStep
from ..video_io import write_video
from .checks import InputChecks, Limits, UserError
from .preview import projection_for
from .request import Run, RunRequest, check_request
from .runs import RunRecord, RunStore
from .step_previews import PREVIEW_MODES, StepPreviews
from .uploads import UploadChecks

log = logging.getLogger("univigu.studio")


@dataclass(frozen=True)
class Settings:
    """What the settings panel sets: the pipeline's :class:`~univigu.offload.Placement` and the step previews."""

    placement: Placement = field(default_factory=Placement)
    preview: str = "auto"  # one of PREVIEW_MODES

    def problem(self) -> str | None:
        """Why these settings cannot run here, or None (checked before any weights load)."""
        if self.preview not in PREVIEW_MODES:
            return f"unknown preview mode {self.preview!r}; choose one of {', '.join(PREVIEW_MODES)}"
        try:
            describe_cache(self.placement.step_cache or "none")
        except ValueError as err:
            return f"step cache: {err}"
        return self.placement.problem()

    def describe(self) -> str:
        p = self.placement
        return (
            f"device {p.device}, {p.dtype}, offload {p.offload}{', VAE tiling' if p.vae_tiling else ''}, "
            f"previews {self.preview}, step cache {p.step_cache or 'none'}"
        )


def load(model: str, placement: Placement):
    """``model`` (a folder, a hub id, or ``"tiny"``: random development weights) placed by ``placement``."""
    if model == "tiny":
        from ..tiny import tiny_pipeline

        pipe = placement.apply(tiny_pipeline().to(DTYPES[placement.dtype]))
    else:
        pipe = load_pipeline(model, placement)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class Studio:
    """The placed pipeline and everything the page asks of it."""

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
        self.output_dir = output_dir
        self.limits = limits or Limits()
        self.store = RunStore()
        self.lock = threading.Lock()  # one user of the pipeline's modules at a time (the VAE keeps state)
        os.makedirs(output_dir, exist_ok=True)
        self.settings = self._checked(settings)
        self.pipe = pipe if pipe is not None else load(model, self.settings.placement)
        # What a reload onto another device keeps (the tokenizer, the clip sizes): built once
        self.checks = InputChecks.of(self.pipe, self.limits)
        self.uploads = UploadChecks(self.limits, self.checks.sizes.trained)
        self.previews = StepPreviews(output_dir, self.lock, self.settings.preview)

    # ---------------------------------------------------------------------------------------------
    # Model and settings
    @staticmethod
    def _checked(settings: Settings) -> Settings:
        problem = settings.problem()
        if problem:
            raise UserError(problem)
        step_cache = describe_cache(settings.placement.step_cache or "none")
        return replace(settings, placement=replace(settings.placement, step_cache=step_cache))

    def apply_settings(self, settings: Settings, timeout: float = 600) -> str:
        """Reload the model with a new placement, or switch its step cache or previews (a run in progress finishes
        first); returns the settings in words."""
        settings = self._checked(settings)
        new, old = settings.placement, self.settings.placement
        if replace(new, step_cache=None) != replace(old, step_cache=None) or new.step_cache != self.pipe.step_cache:
            if not self.lock.acquire(timeout=timeout):
                raise UserError("the model is busy with a run; apply the settings when it finishes")
            try:
                if replace(new, step_cache=None) == replace(old, step_cache=None):
                    self.pipe.set_step_cache(new.step_cache)  # switched in place: nothing reloads
                else:
                    self._reload(new, old)
            finally:
                self.lock.release()
        self.settings = settings
        self.previews.mode = settings.preview
        return settings.describe()

    def _reload(self, new: Placement, old: Placement) -> None:  # under self.lock
        self.pipe = None  # the old weights go before the new ones load
        try:
            self.pipe = load(self.model, new)
            projection_for(self.pipe)
        except Exception:
            log.exception("could not apply %s; restoring %s", new, old)
            self.pipe = load(self.model, old)
            raise

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
    def default_size(self) -> tuple[int, int, int]:
        """(frames, height, width) the model was trained on: the largest clip it makes."""
        return self.checks.sizes.trained

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

    def check(self, request: RunRequest) -> Run:
        """``request`` checked once: a :class:`Run` the pipeline takes, or a :class:`UserError` naming the field."""
        return check_request(request, self.checks, self.uploads)

    def new_record(self, run: Run) -> RunRecord:
        return RunRecord(
            run_id=self.store.new_id(),
            task=run.task,
            prompt=run.prompt,
            seed=run.seed,
            num_steps=run.steps,
            fps=self.fps,
            input_frames=run.frames,
            notes=list(run.notes),
            video_name=run.video_name,
        )

    def live_preview(self, step: TrajectoryStep) -> np.ndarray | None:
        return self.previews.live(self.pipe, step)

    def step_preview(self, record: RunRecord, k: int, full: bool = False, wait: float = 0.5) -> tuple[str | None, str]:
        return self.previews.step(self.pipe, record, k, full=full, wait=wait)

    def save_video(self, record: RunRecord, frames: np.ndarray, suffix: str = "") -> str:
        path = os.path.join(self.output_dir, f"run{record.run_id:04d}-{record.task}{suffix}.mp4")
        return write_video(path, frames, fps=record.fps)


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(1, torch.cuda.device_count())]
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        devices.append("xpu")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices
