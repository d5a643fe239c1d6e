"""The studio's server side without the page: one loaded pipeline, input checks, streamed runs, run history.

Everything here speaks in short messages a user can act on: :class:`UserError` for bad input,
:class:`univigu.Cancelled` for a stopped run. The page (``ui.py``) turns them into notices.
"""

import logging
import math
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image

from ..loading import load_pipeline
from ..offload import (
    DTYPES,
    OFFLOAD_MODES,
    apply_offload,
    default_device,
    dtype_requirements,
    offload_requirements,
)
from ..pipeline_output import TrajectoryStep, UniViGUPipelineOutput
from ..pipeline_univigu import Cancelled, PromptError
from ..video_io import VideoError, fit_video, read_video, write_video
from .preview import LatentProjection, cached_projection, filmstrip, is_full_size, projection_for

log = logging.getLogger("univigu.studio")

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".gif")
PREVIEW_MODES = ("auto", "decode", "project")
TASK_TITLES = {"text_to_video": "Text to video", "caption": "Video captioning", "joint": "Joint generation"}


class UserError(ValueError):
    """Input the studio cannot use; the message says what to do instead."""


@dataclass
class Limits:
    max_steps: int = 100
    min_guidance: float = 1.0
    max_guidance: float = 15.0
    max_seed: int = 2**32 - 1
    max_prompt_chars: int = 1000
    max_upload_mb: int = 200
    max_video_frames: int = 1000
    max_video_pixels: int = 3840 * 2160
    max_decoded_bytes: int = 1 << 30


@dataclass
class Settings:
    device: str
    dtype: str = "float32"
    offload: str = "none"
    vae_tiling: bool = False
    preview: str = "auto"


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
    video_path: str | None = None
    status: str = "running"
    previews: dict = field(default_factory=dict)  # (step, kind) -> png path
    projection: LatentProjection | None = None  # latents -> RGB of the VAE that made it
    created: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        what = (self.prompt or "uploaded clip")[:40]
        state = "" if self.status == "done" else f" ({self.status})"
        return f"#{self.run_id} {TASK_TITLES[self.task]}: {what}{state}"


class RunStore:
    """Per-session run history (a few runs each, a global cap) and the cancel switches of running runs."""

    def __init__(self, per_session: int = 8, total: int = 64):
        self.per_session, self.total = per_session, total
        self._lock = threading.Lock()
        self._runs: OrderedDict[tuple[str, int], RunRecord] = OrderedDict()
        self._active: dict[str, dict[threading.Event, RunRecord | None]] = {}
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
        with self._lock:
            gone = [self._runs.pop(k) for k in [k for k in self._runs if k[0] == session]]
            for switch in self._active.pop(session, {}):
                switch.set()
        _delete_files(gone)

    def register(self, session: str, switch: threading.Event, record: "RunRecord | None" = None) -> None:
        with self._lock:
            self._active.setdefault(session, {})[switch] = record

    def unregister(self, session: str, switch: threading.Event) -> None:
        with self._lock:
            self._active.get(session, {}).pop(switch, None)

    def running(self, session: str) -> list["RunRecord | None"]:
        with self._lock:
            return list(self._active.get(session, {}).values())

    def cancel(self, session: str, wait: float = 0.0) -> list["RunRecord | None"]:
        """Stop every run of ``session``, waiting up to ``wait`` s for them to stop; returns those runs."""
        with self._lock:
            active = dict(self._active.get(session, {}))
        for switch in active:
            switch.set()
        deadline = time.monotonic() + wait
        while wait and self.running(session) and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(active.values())


class Studio:
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
        apply_offload(
            pipe, settings.offload, settings.device, DTYPES[settings.dtype], vae_tiling=settings.vae_tiling
        )
        pipe.set_progress_bar_config(disable=True)
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
            )
            if p
        ]
        if problems:
            raise UserError("; ".join(problems))

    def apply_settings(self, settings: Settings, timeout: float = 600) -> str:
        """Reload the model with new placement settings (a run in progress finishes first)."""
        self._check_settings(settings)
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
        self.settings = settings
        return (
            f"device {settings.device}, {settings.dtype}, offload {settings.offload}"
            f"{', VAE tiling' if settings.vae_tiling else ''}, previews {settings.preview}"
        )

    @property
    def preview_kind(self) -> str:
        """``decode`` or ``project`` for per-step previews under the current settings."""
        if self.settings.preview != "auto":
            return self.settings.preview
        return "project" if is_full_size(self.pipe) else "decode"

    # ---------------------------------------------------------------------------------------------
    # What the model supports
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

    def vocabulary(self) -> list[str] | None:
        """The words a closed-vocabulary (word-level) model knows; None for subword tokenizers."""
        tok = self.pipe.tokenizer
        if tok.unk_token_id is None:
            return None
        specials = set(tok.all_special_tokens)
        words = sorted(w for w in tok.get_vocab() if w not in specials)
        return words if len(words) <= 2000 else None

    # ---------------------------------------------------------------------------------------------
    # Checks: each raises UserError saying what to do
    def check_prompt(self, prompt, required: bool = True) -> str | None:
        text = "" if prompt is None else str(prompt)
        if not text.strip():
            if required:
                raise UserError(
                    f"The prompt is empty: describe the clip you want, e.g. '{self.example_prompt()}'."
                )
            return None
        if len(text) > self.limits.max_prompt_chars:
            raise UserError(
                f"The prompt is {len(text)} characters long; keep it under "
                f"{self.limits.max_prompt_chars} (this model reads at most {self.pipe.max_text_len} tokens)."
            )
        unknown = self.pipe.unknown_words(text)
        if unknown:
            words = ", ".join(f"'{w}'" for w in dict.fromkeys(unknown))
            known = [w for w in self.vocabulary() or [] if any(c.isalnum() for c in w)]
            knows = f" It knows: {', '.join(known)}." if known else ""
            raise UserError(
                f"The model does not know {words}; rephrase without "
                f"{'it' if len(unknown) == 1 else 'them'}.{knows}"
            )
        try:
            self.pipe.text_ids(text)
        except PromptError as err:
            raise UserError(f"The prompt is too long: {err}") from err
        return text

    def check_steps(self, steps) -> int:
        return int(self._number("steps", steps, 1, self.limits.max_steps, integer=True))

    def check_guidance(self, guidance) -> float:
        return float(self._number("guidance", guidance, self.limits.min_guidance, self.limits.max_guidance))

    def check_seed(self, seed) -> int:
        if seed is None or seed == "":
            return 0
        return int(self._number("seed", seed, 0, self.limits.max_seed, integer=True))

    def check_size(self, num_frames, height, width) -> tuple[int, int, int]:
        default_f, default_h, default_w = self.default_size
        f = int(self._number("frames", num_frames or default_f, 1, default_f, integer=True))
        h = int(self._number("height", height or default_h, self.size_step, default_h, integer=True))
        w = int(self._number("width", width or default_w, self.size_step, default_w, integer=True))
        try:
            return self.pipe.check_size(f, h, w)
        except ValueError as err:
            raise UserError(
                f"{err}. This model makes clips of up to {default_f} frames at {default_w}x{default_h}."
            ) from err

    @staticmethod
    def _number(name: str, value, lo: float, hi: float, integer: bool = False) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number) or number < lo or number > hi:
            raise UserError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
        if integer and number != int(number):
            raise UserError(f"{name} must be a whole number, got {value!r}")
        return number

    def example_prompt(self) -> str:
        vocab = set(self.vocabulary() or [])
        for prompt in ("a red circle moves right", "a cat walks on the grass"):
            if not vocab or set(prompt.split()) <= vocab:
                return prompt
        return "a red circle moves right"

    # ---------------------------------------------------------------------------------------------
    # Uploaded clips
    def load_video(self, path) -> tuple[np.ndarray, list[str]]:
        """Decode an uploaded clip with checks that fail fast; returns frames and notes of what was done."""
        if path is None or (isinstance(path, str) and not path):
            raise UserError("No video: upload a clip (mp4, webm, avi, mov or gif) or pick an example.")
        path = os.fspath(path if not isinstance(path, dict) else path.get("path") or path.get("video", ""))
        name = os.path.basename(path)
        if not os.path.isfile(path):
            raise UserError(f"The uploaded file {name} is gone; upload it again.")
        size_mb = os.path.getsize(path) / 2**20
        if size_mb > self.limits.max_upload_mb:
            raise UserError(
                f"{name} is {size_mb:.0f} MB; the studio takes clips up to {self.limits.max_upload_mb} MB. "
                "Trim or compress it."
            )
        if os.path.getsize(path) == 0:
            raise UserError(f"{name} is empty (0 bytes); upload a video file.")
        ext = os.path.splitext(name)[1].lower()
        if ext not in VIDEO_EXTENSIONS:
            raise UserError(
                f"{name} is not a video file ({ext or 'no extension'}); use mp4, webm, avi, mov or gif."
            )
        width, height, est_frames = self._probe(path)
        if width * height > self.limits.max_video_pixels:
            raise UserError(
                f"{name} is {width}x{height}; the studio reads frames of up to "
                f"{self.limits.max_video_pixels / 1e6:.1f} megapixels. Downscale it (the model works at "
                f"{self.default_size[2]}x{self.default_size[1]} anyway)."
            )
        by_memory = self.limits.max_decoded_bytes // max(1, width * height * 3)
        max_frames = int(min(self.limits.max_video_frames, by_memory))
        if est_frames is not None and est_frames > max_frames * 1.05 + 2:
            raise UserError(self._too_long(name, f"about {est_frames:.0f} frames", max_frames, width, height))
        try:
            frames, fps = read_video(path, max_frames=max_frames)
        except VideoError as err:
            if "more than" in str(err):
                raise UserError(
                    self._too_long(name, f"more than {max_frames} frames", max_frames, width, height)
                ) from err
            raise UserError(f"{err}.") from err
        if len(frames) < 2:
            raise UserError(
                f"{name} has only {len(frames)} frame; the model describes motion, so upload a clip with "
                f"at least 2 frames (it samples {self.default_size[0]})."
            )
        h, w = frames.shape[1:3]
        rate = f" at {fps:g} fps" if fps else ""
        return frames, [f"decoded {len(frames)} frames of {w}x{h}{rate} from {name}"]

    def _too_long(self, name, what, max_frames, width, height) -> str:
        return (
            f"{name} has {what}; at {width}x{height} the studio reads at most {max_frames}. "
            "Trim it to a shorter clip (a few seconds is plenty)."
        )

    @staticmethod
    def _probe(path: str) -> tuple[int, int, float | None]:
        """(width, height, estimated frame count or None) without decoding the whole clip."""
        meta = {}
        try:
            meta = iio.immeta(path) or {}
        except Exception:  # no metadata: probe the first frame instead
            meta = {}
        size = meta.get("size") if isinstance(meta, dict) else None
        est = None
        duration, fps = meta.get("duration"), meta.get("fps")
        if (
            isinstance(duration, (int, float))
            and isinstance(fps, (int, float))
            and math.isfinite(duration * fps)
        ):
            est = duration * fps
        if size and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
            return int(size[0]), int(size[1]), est
        try:
            first = next(iter(iio.imiter(path)))
        except StopIteration:
            raise UserError(f"{os.path.basename(path)} has no frames; upload a clip with some.") from None
        except Exception as err:  # any decoder failure means "not a readable video"
            name = os.path.basename(path)
            if "does not contain any stream" in str(err):
                raise UserError(
                    f"{name} has no video frames (no video stream, or an empty one); upload a clip with some."
                ) from err
            if _looks_like_text(path):
                raise UserError(
                    f"{name} is a text file, not a video; upload an mp4, webm, avi, mov or gif file."
                ) from err
            raise UserError(
                f"Could not decode {name} as a video ({type(err).__name__}): the file is corrupt or "
                "not a video. Upload an mp4, webm, avi, mov or gif file."
            ) from err
        first = np.asarray(first)
        if first.ndim < 2:
            raise UserError(
                f"{os.path.basename(path)} is not a video; upload an mp4, webm, avi, mov or gif file."
            )
        return int(first.shape[1]), int(first.shape[0]), est

    def fit(self, frames: np.ndarray) -> tuple[np.ndarray, list[str]]:
        f, h, w = self.default_size
        return fit_video(frames, f, h, w)

    # ---------------------------------------------------------------------------------------------
    # Runs
    def stream(
        self, session: str, call: Callable[[Callable], UniViGUPipelineOutput], record: RunRecord | None = None
    ) -> Iterator[tuple[str, object]]:
        """Run ``call(callback)`` in a worker thread; yield ("step", TrajectoryStep) ... ("done", output).

        Raises what the run raised (``Cancelled`` when :meth:`RunStore.cancel` or the consumer stopped it).
        """
        switch = threading.Event()
        events: queue.Queue = queue.Queue()

        def callback(record: TrajectoryStep):
            record.video_latents = None  # the scrubber shows the predicted clip (video_x0); halve the memory
            events.put(("step", record))
            if switch.is_set():
                raise Cancelled(f"stopped after step {record.step} of {record.num_steps}")

        def work():
            try:
                with self.lock:
                    if switch.is_set():
                        raise Cancelled("stopped before it started")
                    projection_for(self.pipe)  # fitted once per VAE; live previews use it
                    output = call(callback)
                events.put(("done", output))
            except BaseException as err:  # handed to the consumer, which decides what the user sees
                events.put(("error", err))

        self.store.register(session, switch, record)
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
        return RunRecord(
            run_id=self.store.new_id(), task=task, prompt=prompt, seed=seed, num_steps=steps, fps=self.fps
        )

    def save_video(self, record: RunRecord, frames: np.ndarray, suffix: str = "") -> str:
        path = os.path.join(self.output_dir, f"run{record.run_id:04d}-{record.task}{suffix}.mp4")
        return write_video(path, frames, fps=record.fps)

    # ---------------------------------------------------------------------------------------------
    # Per-step previews
    def live_preview(self, step: TrajectoryStep) -> np.ndarray | None:
        """A fast filmstrip of the clip predicted at ``step`` (projection: no VAE, no lock)."""
        projection = cached_projection(self.pipe)
        if step.video_x0 is None or projection is None:
            return None
        return filmstrip(projection(step.video_x0), max_frames=6, height=64)

    def step_preview(
        self, record: RunRecord, k: int, full: bool = False, wait: float = 0.5
    ) -> tuple[str | None, str]:
        """PNG path of a filmstrip of the clip at step ``k`` and a line saying how it was made.

        ``decode`` previews wait ``wait`` seconds for the model (busy with a run?) and fall back to the
        projection; ``full`` asks for a decode and waits for it.
        """
        if record.task == "caption":
            if record.input_frames is None:
                return None, ""
            return self._save_preview(
                record,
                0,
                "input",
                record.input_frames,
                "the clip the model was given, held clean while the caption is denoised",
            )
        want = "decode" if full else self.preview_kind
        if (k, want) in record.previews:
            return record.previews[(k, want)]
        x0 = record.trajectory[k - 1].video_x0
        if x0 is None:
            return None, ""
        if want == "decode":
            if self.lock.acquire(timeout=60 if full else wait):
                try:
                    frames = self.pipe.decode_latents(x0)
                except Exception as err:  # e.g. no device outside a borrowed GPU: fall back to the projection
                    log.warning("could not decode step %d of run #%d: %s", k, record.run_id, err)
                    if full:
                        raise UserError(
                            f"Could not decode this step ({type(err).__name__}); try again."
                        ) from err
                    frames = None
                finally:
                    self.lock.release()
                if frames is not None:
                    note = f"clip predicted at step {k}, decoded by the VAE"
                    return self._save_preview(record, k, "decode", frames, note)
            elif full:
                raise UserError("The model is busy with another run; decode this step when it finishes.")
        if (k, "project") in record.previews:
            return record.previews[(k, "project")]
        projection = record.projection or cached_projection(self.pipe)
        if projection is None:
            return None, "no preview for this step"
        return self._save_preview(
            record,
            k,
            "project",
            projection(x0),
            f"clip predicted at step {k}, fast latent-to-RGB preview "
            "(press 'Decode this step' for the VAE's)",
        )

    def _save_preview(self, record: RunRecord, k: int, kind: str, frames: np.ndarray, note: str):
        if (k, kind) not in record.previews:
            path = os.path.join(self.output_dir, f"run{record.run_id:04d}-step{k:03d}-{kind}.png")
            Image.fromarray(filmstrip(frames)).save(path)
            record.previews[(k, kind)] = (path, note)
        return record.previews[(k, kind)]


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


def _looks_like_text(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(1024)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def device_requirements(device: str) -> str | None:
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        return f"unknown device {device!r}; use cpu or cuda"
    if kind == "cuda" and not torch.cuda.is_available():
        return "cuda: this machine has no CUDA GPU"
    if kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return "xpu: this machine has no Intel GPU"
    if kind == "mps" and not torch.backends.mps.is_available():
        return "mps: this machine has no Apple GPU"
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
    "device_requirements",
]
