"""The studio's run history: one record per run (its denoising kept for scrubbing), per browser session.

Records are plain data (numpy arrays, tensors, a fitted projection) so that under ZeroGPU they can travel
back from the borrowed GPU's process.
"""

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..trajectory import TrajectoryStep
from .preview import LatentProjection

TASK_TITLES = {"text_to_video": "Text to video", "caption": "Video captioning", "joint": "Joint generation"}


@dataclass
class RunRecord:
    """One run, kept so its denoising can be scrubbed after it finished (or was cancelled)."""

    run_id: int
    task: str
    prompt: str | None
    seed: int
    num_steps: int
    fps: float
    trajectory: list[TrajectoryStep] = field(default_factory=list)
    input_frames: np.ndarray | None = None  # the clip the model saw (captioning)
    frames: np.ndarray | None = None
    text: str | None = None
    notes: list[str] = field(default_factory=list)
    video_name: str | None = None  # captioning: the clip's file name (an example's, or an upload's)
    video_path: str | None = None
    status: str = "running"
    previews: dict = field(default_factory=dict)  # (step, kind) -> png path
    projection: LatentProjection | None = None  # latents -> RGB of the VAE that made it
    created: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        what = ((self.video_name if self.task == "caption" else None) or self.prompt or "uploaded clip")[:40]
        state = "" if self.status == "done" else f" ({self.status})"
        return f"#{self.run_id} {TASK_TITLES[self.task]}: {what}{state}"


class RunStore:
    """Per-session run history (a few runs each, a global cap), the cancel switches of running runs and each
    session's cancel generation.

    A session's generation counts its cancels (and its page going away). A run remembers the generation it joined
    the queue with (``run_queue``); one that starts under a newer generation was cancelled while it waited.
    """

    def __init__(self, per_session: int = 8, total: int = 64, generations: int = 10_000):
        self.per_session, self.total, self.generations = per_session, total, generations
        self._lock = threading.Lock()
        self._runs: OrderedDict[tuple[str, int], RunRecord] = OrderedDict()
        self._active: dict[str, dict[threading.Event, RunRecord | None]] = {}
        # Sessions that cancelled or went away; past ``generations`` the longest untouched is forgotten and reads 0
        # again, so a run it still had waiting would no longer be held back by that old cancel
        self._generation: OrderedDict[str, int] = OrderedDict()
        self._next_id = 1

    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id - 1

    def add(self, session: str, record: RunRecord) -> None:
        gone = []
        with self._lock:
            self._runs[(session, record.run_id)] = record
            mine = [key for key in self._runs if key[0] == session]
            for key in mine[: max(0, len(mine) - self.per_session)]:
                gone.append(self._runs.pop(key))
            while len(self._runs) > self.total:
                gone.append(self._runs.popitem(last=False)[1])
        _delete_files(gone)

    def get(self, session: str, run_id) -> RunRecord | None:
        try:
            run_id = int(run_id)
        except (TypeError, ValueError):
            return None
        with self._lock:
            return self._runs.get((session, run_id))

    def runs(self, session: str) -> list[RunRecord]:
        with self._lock:
            return [r for (s, _), r in self._runs.items() if s == session]

    def drop_session(self, session: str) -> None:
        """Forget a session whose page went away: its runs stop, its waiting runs won't start, its files go."""
        with self._lock:
            gone = [self._runs.pop(k) for k in [k for k in self._runs if k[0] == session]]
            self._next_generation(session)
            for switch in self._active.pop(session, {}):
                switch.set()
        _delete_files(gone)

    def generation(self, session: str) -> int:
        """How many times ``session`` cancelled (or went away); a run records it when it joins the queue."""
        with self._lock:
            return self._generation.get(session, 0)

    def cancelled_since(self, session: str, joined: int | None) -> bool:
        """Whether ``session`` cancelled after a run of it joined the queue at generation ``joined``."""
        return joined is not None and self.generation(session) > joined

    def _next_generation(self, session: str) -> None:  # under self._lock
        self._generation[session] = self._generation.pop(session, 0) + 1
        while len(self._generation) > self.generations:
            self._generation.popitem(last=False)

    def register(
        self, session: str, switch: threading.Event, record: "RunRecord | None" = None, joined: int | None = None
    ) -> None:
        """Track a starting run's cancel switch; set it at once if the session cancelled since ``joined``."""
        with self._lock:
            self._active.setdefault(session, {})[switch] = record
            if joined is not None and self._generation.get(session, 0) > joined:
                switch.set()

    def unregister(self, session: str, switch: threading.Event) -> None:
        with self._lock:
            self._active.get(session, {}).pop(switch, None)

    def running(self, session: str) -> list["RunRecord | None"]:
        with self._lock:
            return list(self._active.get(session, {}).values())

    def cancel(self, session: str, wait: float = 0.0) -> list["RunRecord | None"]:
        """Stop every run of ``session`` and, with a new generation, those it has waiting in the queue; wait up to
        ``wait`` s for the running ones to stop and return them."""
        with self._lock:
            self._next_generation(session)
            active = dict(self._active.get(session, {}))
            for switch in active:
                switch.set()
        deadline = time.monotonic() + wait
        while wait and self.running(session) and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(active.values())


def _delete_files(records: list[RunRecord]) -> None:
    """Remove a forgotten run's clip and previews (the page has its own copies in gradio's cache)."""
    for record in records:
        paths = [record.video_path] + [path for path, _ in record.previews.values()]
        for path in paths:
            if path:
                try:
                    os.remove(path)
                except OSError:
                    pass


def session_of(request) -> str:
    """The run store's key for a browser tab: gradio's session hash (``anonymous`` without one)."""
    return (getattr(request, "session_hash", None) or "anonymous") if request is not None else "anonymous"
