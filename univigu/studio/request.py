"""A run as the page or the API asked for it (:class:`RunRequest`, values as they came) and as the studio runs it
(:class:`Run`, checked once by :func:`check_request`)."""

import os
from dataclasses import dataclass, field

import numpy as np

from ..settings import GUIDANCE_SCALE, default_steps
from .checks import InputChecks, UserError
from .uploads import UploadChecks

TASKS = ("text_to_video", "caption", "joint")


@dataclass(frozen=True)
class RunRequest:
    """One run's inputs, unchecked: what a task's endpoint was given (``None``: not given, the default)."""

    task: str  # one of TASKS
    prompt: str | None = None  # the clip to make; captioning's optional hint
    seed: object = None  # blank: drawn and reported
    steps: object = None  # blank: the task's default (univigu.settings)
    guidance: object = None  # generation only
    num_frames: object = None  # generation only; blank: the trained size
    height: object = None
    width: object = None
    video: object = None  # captioning: an uploaded file's path (or gradio's file dict)
    video_cache_interval: object = None  # captioning
    template: str | None = None  # captioning: fill in the blanks of this caption


@dataclass(frozen=True)
class Run:
    """A checked request: every value is what the pipeline takes."""

    task: str
    prompt: str | None
    seed: int
    steps: int
    size: tuple[int, int, int]  # the clip made, or the size a caption's clip is fitted to
    guidance: float | None = None
    frames: np.ndarray | None = field(default=None, repr=False)  # captioning: the clip decoded to `size`
    notes: list[str] = field(default_factory=list)  # what was done to the clip to fit the model
    video_name: str | None = None  # the clip's file name, for the run's label
    video_cache_interval: int | None = None
    template: str | None = None

    @property
    def captioning(self) -> bool:
        return self.task == "caption"


def check_request(request: RunRequest, checks: InputChecks, uploads: UploadChecks) -> Run:
    """Check ``request`` once, in the order a user reads the form (the clip last: it is the slow one).

    Raises :class:`UserError` naming the field ("Steps", "Seed", "Prompt", ...). A blank value takes the library's
    default (``univigu.settings``), as the command line does: the same seed gives the same output in both.
    """
    if request.task not in TASKS:
        raise UserError(f"unknown task {request.task!r}; one of {', '.join(TASKS)}")
    blank = (None, "")
    steps = checks.steps(default_steps(request.task == "caption") if request.steps in blank else request.steps)
    seed = checks.seed(request.seed)
    if request.task != "caption":
        return Run(
            task=request.task,
            prompt=checks.prompt(request.prompt),
            seed=seed,
            steps=steps,
            size=checks.size(request.num_frames, request.height, request.width),
            guidance=checks.guidance(GUIDANCE_SCALE if request.guidance in blank else request.guidance),
        )
    prompt = checks.prompt(request.prompt, name="Hint", required=False)
    template = checks.template(request.template)
    every = checks.cache_interval(request.video_cache_interval)
    frames, notes = uploads.load_video(request.video)  # decoded straight to the model's clip size
    return Run(
        task="caption",
        prompt=prompt,
        seed=seed,
        steps=steps,
        size=uploads.clip_size,
        frames=frames,
        notes=notes,
        video_name=os.path.basename(_path_of(request.video)),
        video_cache_interval=every,
        template=template,
    )


def _path_of(video) -> str:
    if isinstance(video, dict):
        return str(video.get("path") or video.get("video") or "")
    return os.fspath(video)
