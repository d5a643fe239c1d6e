"""The run endpoints: ``/text_to_video``, ``/caption``, ``/joint`` stream progress and end with the clip,
the text and the run's trajectory; ``/cancel`` stops a session's runs.
"""

import logging
import math

import gradio as gr

from ..flows.uniflow import num_video_tokens
from ..pipeline_univigu import Cancelled
from ..settings import CAPTION_STEPS, CAPTION_VIDEO_CACHE_INTERVAL, GENERATION_STEPS, GUIDANCE_SCALE
from ..trajectory import TrajectoryRecorder
from . import render
from .engine import Studio
from .errors import guarded
from .preview import cached_projection
from .request import Run, RunRequest
from .run_queue import joined_generation
from .runs import TASK_TITLES, RunRecord, session_of

log = logging.getLogger("univigu.studio")

try:  # Hugging Face ZeroGPU. Imported with the page, before the model loads: on a ZeroGPU Space it patches torch
    import spaces
except ImportError:  # pragma: no cover - depends on the machine
    spaces = None

# ------------------------------------------------------------------------------------------------
# ZeroGPU: each run borrows a GPU for the seconds its request asks up front, and shorter requests queue sooner,
# so the studio asks for what the request needs: a fixed overhead plus its steps at an assumed throughput.
GPU_TFLOPS = 100.0  # sustained bf16 throughput assumed of a ZeroGPU slice (half an H200, ~450 peak), with margin
GPU_OVERHEAD_S = 20.0  # weights onto the GPU, the VAE decode, the clip written


def gpu(duration):
    """Decorator: ``spaces.GPU(duration=duration)`` on a ZeroGPU Space (a GPU borrowed per call for
    ``duration(*args, **kwargs)`` seconds); elsewhere, or without the ``spaces`` package, the function itself."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def step_flops(pipe, size: tuple[int, int, int], passes: int = 1, text_only: bool = False) -> float:
    """Approximate FLOPs of one denoising step on a clip of ``size`` (frames, height, width): 2 per weight per query
    token (every weight counted, though each token meets only its modality's FFN) plus attention's 4 q n d per layer,
    per pass.

    ``text_only``: a step that runs only the text tokens on the clip's cached keys and values (captioning's
    ``video_cache_interval``).
    """
    cfg = pipe.transformer.config
    tokens = num_video_tokens(pipe.transformer, pipe.latent_shape(*size)) + pipe.max_text_len
    queries = pipe.max_text_len if text_only else tokens
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    weights = pipe.transformer.num_parameters()
    return passes * (2.0 * weights * queries + 4.0 * queries * tokens * dim * cfg.num_layers)


def gpu_seconds(pipe, run: Run) -> float:
    """GPU seconds a checked run needs: ``GPU_OVERHEAD_S`` plus its steps at ``GPU_TFLOPS`` for its clip size (two
    passes a step under classifier-free guidance; a caption's steps between clip refreshes run the text only)."""
    if run.captioning:  # the clip is fitted to the trained size; guidance is for the video stream only
        full = math.ceil(run.steps / run.video_cache_interval)  # the clip's keys and values at step 0, every k-th
        flops = full * step_flops(pipe, run.size)
        flops += (run.steps - full) * step_flops(pipe, run.size, text_only=True)
    else:
        flops = run.steps * step_flops(pipe, run.size, passes=2 if run.guidance > 1 else 1)
    return GPU_OVERHEAD_S + flops / (GPU_TFLOPS * 1e12)


def not_an_mcp_tool(fn):
    """Keep a public API endpoint out of gradio's MCP tools (``app.py --mcp``): its server lists an endpoint's
    function as a tool unless the function's ``_mcp_type`` (which ``gr.mcp.tool``, ``resource`` and ``prompt`` set)
    names something else (``list_tools`` in gradio/mcp.py)."""
    fn._mcp_type = "api-only"
    return fn


# ------------------------------------------------------------------------------------------------
# Runs
def _stream_run(studio: Studio, session: str, run: Run, joined: int | None = None):
    """Run a checked ``run`` streaming ("progress", html) and finally ("done", RunRecord); a cancelled run with
    steps yields ("partial", RunRecord) before it raises.

    ``joined``: the session's cancel generation when the request joined the queue (``run_queue``).
    Stores nothing itself: under ZeroGPU this runs in a borrowed GPU's process, so records travel back.
    """
    title = TASK_TITLES[run.task]
    record = studio.new_record(run)

    def call(callback):
        pipe = studio.pipe
        recorder = TrajectoryRecorder(on_step=callback)  # each step's record to the live view as it is made
        common = {"num_inference_steps": run.steps, "seed": run.seed, "callback_on_step_end": recorder}
        if run.captioning:
            every, template = run.video_cache_interval, run.template
            return pipe.caption(run.frames, prompt=run.prompt, video_cache_interval=every, template=template, **common)
        method = pipe.text_to_video if run.task == "text_to_video" else pipe.joint
        f, h, w = run.size
        return method(run.prompt, guidance_scale=run.guidance, num_frames=f, height=h, width=w, **common)

    yield "progress", render.progress_html(title, None, run.steps, note="waiting for the model…")
    output = None
    try:
        for kind, payload in studio.stream(session, call, record, joined):
            if kind == "step":
                record.trajectory.append(payload)
                thumb = studio.live_preview(payload)
                uri = render.png_data_uri(thumb) if thumb is not None else None
                yield "progress", render.progress_html(title, payload, run.steps, uri)
            else:
                output = payload
    except Cancelled:
        record.projection = cached_projection(studio.pipe)
        record.status = f"cancelled at step {len(record.trajectory)}"
        log.info(
            "run #%d (%s) cancelled after step %d of %d", record.run_id, run.task, len(record.trajectory), run.steps
        )
        if record.trajectory:
            yield "partial", record  # kept for scrubbing; the caller stores it
        raise
    record.projection = cached_projection(studio.pipe)  # travels with the record (ZeroGPU: across processes)
    record.frames, record.text = output.frames, output.text
    if output.frames is not None:
        record.video_path = studio.save_video(record, output.frames)
    elif run.frames is not None:
        record.video_path = studio.save_video(record, run.frames, suffix="-input")
    record.status = "done"
    yield "done", record


def _summary(record: RunRecord) -> str:
    bits = [f"run #{record.run_id} done in {record.num_steps} steps (seed {record.seed})"]
    if record.notes:
        bits.append("; ".join(record.notes))
    return ". ".join(bits) + ". Scrub its denoising below."


def _trajectory(record: RunRecord) -> dict:
    return render.trajectory_json(
        record.trajectory,
        {
            "run_id": record.run_id,
            "task": record.task,
            "seed": record.seed,
            "prompt": record.prompt,
            "text": record.text,
            "notes": record.notes,
        },
    )


# What each task's endpoint returns, in order: the one shape every run yields (``_view``), as each tab shows it.
# ``video`` is the clip made, or for captioning the clip the model saw.
OUTPUTS = {
    "text_to_video": ("video", "trajectory", "status"),
    "caption": ("text", "notes", "video", "trajectory", "status"),
    "joint": ("video", "text", "trajectory", "status"),
}


def _view(task: str, progress: str | None = None, record: RunRecord | None = None) -> tuple:
    """A task's outputs while it streams (``progress``: the status alone, the rest left as they are) or when done."""
    if record is None:
        values = {"status": progress}
    else:
        values = {
            "video": record.video_path,
            "text": record.text or "",
            "notes": "**What was done to fit the model:** " + "; ".join(record.notes) if record.notes else "",
            "trajectory": _trajectory(record),
            "status": render.done_html(TASK_TITLES[task], _summary(record)),
        }
    return tuple(values.get(name, gr.skip()) for name in OUTPUTS[task])


def make_handlers(studio: Studio) -> dict:
    """The run endpoints, also the MCP tools (``app.py --mcp``): their names, parameters, type hints and docstrings
    are the API's and the tools' schema."""

    def duration(session: str, run: Run, joined: int | None = None) -> int:
        return math.ceil(gpu_seconds(studio.pipe, run))

    @gpu(duration)
    def on_device(session: str, run: Run, joined: int | None = None):
        yield from _stream_run(studio, session, run, joined)

    def stream(request, asked: RunRequest):
        """Check ``asked`` once, run it on the device and store its record; yields the task's outputs."""
        session, joined = session_of(request), joined_generation(request)
        if studio.store.cancelled_since(session, joined):  # Cancel was pressed while this run waited its turn
            log.info("a %s run left the queue cancelled; it computes nothing", asked.task)
            raise Cancelled("before it started, while it waited in the queue")
        run = studio.check(asked)
        for kind, value in on_device(session, run, joined):
            if kind in ("partial", "done"):
                studio.store.add(session, value)
            if kind == "progress":
                yield _view(run.task, progress=value)
            elif kind == "done":
                yield _view(run.task, record=value)

    @guarded
    def text_to_video(
        prompt: str,
        seed: int | None = None,
        steps: int = GENERATION_STEPS,
        guidance: float = GUIDANCE_SCALE,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        request: gr.Request = None,
    ):
        """Generate a short video clip from a text prompt with the Uni-ViGU model.

        Args:
            prompt: What the clip shows, e.g. "a red circle moves right" (an unknown word is refused, naming the known).
            seed: Random seed, 0 to 4294967295: the same seed and settings give the same clip (blank: drawn at random).
            steps: Denoising steps (more: slower, usually cleaner).
            guidance: Classifier-free guidance scale, at least 1 (1 turns it off).
            num_frames: Frames of the clip, 1 + 4k, at most the model's (blank: the model's).
            height: Height in pixels, on the model's grid, at most the model's (blank: the model's).
            width: Width in pixels, on the model's grid, at most the model's (blank: the model's).

        Returns:
            The clip (an mp4 file's URL), the run's denoising trajectory (JSON) and a status line.
        """
        asked = RunRequest("text_to_video", prompt, seed, steps, guidance, num_frames, height, width)
        yield from stream(request, asked)

    @guarded
    def caption(
        video: str,
        seed: int | None = None,
        steps: int = CAPTION_STEPS,
        prompt: str = "",
        video_cache_interval: int = CAPTION_VIDEO_CACHE_INTERVAL,
        template: str = "",
        request: gr.Request = None,
    ):
        """Describe a video clip in words, or fill in the blanks of a caption template from it.

        In a template "_" is one word's position to fill and "_*N" N of them; the rest is kept as written.

        Args:
            video: The clip to describe, a URL of an mp4, webm, avi, mov or gif (fitted to the model's clip size).
            seed: Random seed, 0 to 4294967295 (blank: drawn at random).
            steps: Denoising steps of the caption.
            prompt: Optional hint that conditions the caption (blank: none).
            video_cache_interval: Recompute the clip's keys and values every k steps, the text alone between (1: all).
            template: Caption with blanks to fill from the clip, e.g. "a _ circle moves _*2" (blank: free captioning).

        Returns:
            The caption, notes on fitting the clip, the clip the model saw (a URL), the trajectory (JSON), a status.
        """
        asked = RunRequest(
            "caption", prompt, seed, steps, video=video, video_cache_interval=video_cache_interval, template=template
        )
        yield from stream(request, asked)

    @guarded
    def joint(
        prompt: str,
        seed: int | None = None,
        steps: int = GENERATION_STEPS,
        guidance: float = GUIDANCE_SCALE,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        request: gr.Request = None,
    ):
        """Generate a video clip and its caption together from a text prompt (both denoised step by step).

        Args:
            prompt: What the clip shows, e.g. "a red circle moves right".
            seed: Random seed, 0 to 4294967295 (blank: drawn at random).
            steps: Denoising steps.
            guidance: Classifier-free guidance scale of the clip, at least 1 (1 turns it off).
            num_frames: Frames of the clip, 1 + 4k, at most the model's (blank: the model's).
            height: Height in pixels, on the model's grid, at most the model's (blank: the model's).
            width: Width in pixels, on the model's grid, at most the model's (blank: the model's).

        Returns:
            The clip (an mp4 file's URL), its caption, the trajectory (JSON) and a status line.
        """
        asked = RunRequest("joint", prompt, seed, steps, guidance, num_frames, height, width)
        yield from stream(request, asked)

    @not_an_mcp_tool  # it stops a session's runs; every MCP client shares the server's one session
    @guarded
    def cancel(request: gr.Request):
        """Stop the session's running run and every run it has waiting in the queue (they end when their turn
        comes, before computing anything). Registered outside the queue (``run_queue.CONTROL``)."""
        stopped = studio.store.cancel(session_of(request), wait=15)
        records = [r for r in stopped if r is not None]
        if not stopped:
            return '<div class="uv-status">Nothing is running; nothing you had waiting in the queue will start.</div>'
        where = ", ".join(f"run #{r.run_id} after step {len(r.trajectory)} of {r.num_steps}" for r in records)
        return (
            f'<div class="uv-status" data-cancelled="1">Cancelled {where or "the run"} and anything you had '
            "waiting in the queue. Press Run to start again.</div>"
        )

    return {"text_to_video": text_to_video, "caption": caption, "joint": joint, "cancel": cancel}
