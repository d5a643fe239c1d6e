"""The run endpoints: ``/text_to_video``, ``/caption``, ``/joint`` stream progress and end with the clip,
the text and the run's trajectory; ``/cancel`` stops a session's runs.
"""

import logging
import math

import gradio as gr

from ..pipeline_univigu import Cancelled
from ..settings import CAPTION_VIDEO_CACHE_INTERVAL
from ..trajectory import TrajectoryRecorder
from . import render
from .engine import Studio
from .errors import guarded
from .preview import cached_projection
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


def step_flops(pipe, num_frames: int, height: int, width: int, passes: int = 1, text_only: bool = False) -> float:
    """Approximate FLOPs of one denoising step on a clip of that size: 2 per weight per query token (every weight
    counted, though each token meets only its modality's FFN) plus attention's 4 q n d per layer, per pass.

    ``text_only``: a step that runs only the text tokens on the clip's cached keys and values (captioning's
    ``video_cache_interval``).
    """
    cfg = pipe.transformer.config
    pt, ph, pw = cfg.patch_size
    tokens = ((num_frames - 1) // pipe.vae_scale_factor_temporal + 1) // pt * (
        height // (pipe.vae_scale_factor_spatial * ph)
    ) * (width // (pipe.vae_scale_factor_spatial * pw)) + pipe.max_text_len
    queries = pipe.max_text_len if text_only else tokens
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    weights = pipe.transformer.num_parameters()
    return passes * (2.0 * weights * queries + 4.0 * queries * tokens * dim * cfg.num_layers)


def gpu_seconds(
    studio: Studio,
    task: str,
    steps,
    guidance=None,
    num_frames=None,
    height=None,
    width=None,
    video_cache_interval=None,
) -> float:
    """GPU seconds a request needs: ``GPU_OVERHEAD_S`` plus its steps at ``GPU_TFLOPS`` for its clip size (two
    passes a step under classifier-free guidance; a caption's steps between clip refreshes run the text only).

    Reads the raw request, before the checks: a value they will refuse counts as 1 step or the model's default
    size, since that run stops at the checks.
    """

    def value(raw, default, lo, hi) -> float:
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return default
        return number if math.isfinite(number) and lo <= number <= hi else default

    f0, h0, w0 = studio.default_size
    steps = int(value(steps, 1, 1, studio.limits.max_steps))
    if task == "caption":  # the upload is fitted to the default size; guidance is for the video stream only
        every = int(value(video_cache_interval, CAPTION_VIDEO_CACHE_INTERVAL, 1, studio.limits.max_steps))
        full = math.ceil(steps / every)  # the clip's keys and values at step 0 and every k-th step after
        flops = full * step_flops(studio.pipe, f0, h0, w0)
        flops += (steps - full) * step_flops(studio.pipe, f0, h0, w0, text_only=True)
    else:
        size = tuple(int(value(v, d, 1, d)) for v, d in zip((num_frames, height, width), (f0, h0, w0)))
        guidance = value(guidance, 1.0, studio.limits.min_guidance, studio.limits.max_guidance)
        flops = steps * step_flops(studio.pipe, *size, passes=2 if guidance > 1 else 1)
    return GPU_OVERHEAD_S + flops / (GPU_TFLOPS * 1e12)


# ------------------------------------------------------------------------------------------------
# Runs
def _stream_task(
    studio: Studio,
    session: str,
    task: str,
    prompt,
    seed,
    steps,
    guidance=None,
    num_frames=None,
    height=None,
    width=None,
    video=None,
    video_cache_interval=None,
    joined=None,
):
    """Check the inputs, run ``task`` streaming ("progress", html) and finally ("done", RunRecord).

    ``joined``: the session's cancel generation when the request joined the queue (``run_queue``).
    Stores nothing itself: under ZeroGPU this runs in a borrowed GPU's process, so records travel back.
    """
    steps, seed = studio.check_steps(steps), studio.check_seed(seed)
    title = TASK_TITLES[task]
    input_frames, notes = None, []
    if task == "caption":
        prompt = studio.check_prompt(prompt, required=False)
        input_frames, notes = studio.load_video(video)  # decoded straight to the model's clip size
        video_cache_interval = studio.check_cache_interval(video_cache_interval)
    else:
        prompt = studio.check_prompt(prompt, required=True)
        guidance = studio.check_guidance(guidance)
        size = studio.check_size(num_frames, height, width)
    record = studio.new_record(task, prompt, seed, steps)
    record.input_frames, record.notes = input_frames, notes

    def call(callback):
        pipe = studio.pipe
        recorder = TrajectoryRecorder(on_step=callback)  # each step's record to the live view as it is made
        common = {"num_inference_steps": steps, "seed": seed, "callback_on_step_end": recorder}
        if task == "caption":
            return pipe.caption(input_frames, prompt=prompt, video_cache_interval=video_cache_interval, **common)
        method = pipe.text_to_video if task == "text_to_video" else pipe.joint
        return method(prompt, guidance_scale=guidance, num_frames=size[0], height=size[1], width=size[2], **common)

    yield "progress", render.progress_html(title, None, steps, note="waiting for the model…")
    output = None
    try:
        for kind, payload in studio.stream(session, call, record, joined):
            if kind == "step":
                record.trajectory.append(payload)
                thumb = studio.live_preview(payload)
                uri = render.png_data_uri(thumb) if thumb is not None else None
                yield "progress", render.progress_html(title, payload, steps, uri)
            else:
                output = payload
    except Cancelled:
        record.projection = cached_projection(studio.pipe)
        record.status = f"cancelled at step {len(record.trajectory)}"
        log.info("run #%d (%s) cancelled after step %d of %d", record.run_id, task, len(record.trajectory), steps)
        if record.trajectory:
            yield "partial", record  # kept for scrubbing; the caller stores it
        raise
    record.projection = cached_projection(studio.pipe)  # travels with the record (ZeroGPU: across processes)
    record.frames, record.text = output.frames, output.text
    if output.frames is not None:
        record.video_path = studio.save_video(record, output.frames)
    elif input_frames is not None:
        record.video_path = studio.save_video(record, input_frames, suffix="-input")
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


def make_handlers(studio: Studio) -> dict:
    """The run endpoints. Parameter names are the API's (``prompt``/``video``, ``seed``, ...)."""

    def duration(session, task, prompt, seed, steps, guidance=None, num_frames=None, height=None, width=None, **kw):
        interval = kw.get("video_cache_interval")
        return math.ceil(gpu_seconds(studio, task, steps, guidance, num_frames, height, width, interval))

    @gpu(duration)
    def on_device(session, task, *args, **kwargs):
        yield from _stream_task(studio, session, task, *args, **kwargs)

    def stream(request, task, *args, **kwargs):
        session, joined = session_of(request), joined_generation(request)
        if studio.store.cancelled_since(session, joined):  # Cancel was pressed while this run waited its turn
            log.info("a %s run left the queue cancelled; it computes nothing", task)
            raise Cancelled("before it started, while it waited in the queue")
        for kind, value in on_device(session, task, *args, joined=joined, **kwargs):
            if kind in ("partial", "done"):
                studio.store.add(session, value)
            if kind != "partial":
                yield kind, value

    @guarded
    def text_to_video(prompt, seed, steps, guidance, num_frames, height, width, request: gr.Request):
        for kind, value in stream(request, "text_to_video", prompt, seed, steps, guidance, num_frames, height, width):
            if kind == "progress":
                yield gr.skip(), gr.skip(), value
            else:
                yield (
                    value.video_path,
                    _trajectory(value),
                    render.done_html(TASK_TITLES["text_to_video"], _summary(value)),
                )

    @guarded
    def caption(video, seed, steps, prompt, video_cache_interval, request: gr.Request):
        kwargs = {"video": video, "video_cache_interval": video_cache_interval}
        for kind, value in stream(request, "caption", prompt, seed, steps, **kwargs):
            if kind == "progress":
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), value
            else:
                notes = "**What was done to fit the model:** " + "; ".join(value.notes) if value.notes else ""
                yield (
                    value.text or "",
                    notes,
                    value.video_path,
                    _trajectory(value),
                    render.done_html(TASK_TITLES["caption"], _summary(value)),
                )

    @guarded
    def joint(prompt, seed, steps, guidance, num_frames, height, width, request: gr.Request):
        for kind, value in stream(request, "joint", prompt, seed, steps, guidance, num_frames, height, width):
            if kind == "progress":
                yield gr.skip(), gr.skip(), gr.skip(), value
            else:
                yield (
                    value.video_path,
                    value.text or "",
                    _trajectory(value),
                    render.done_html(TASK_TITLES["joint"], _summary(value)),
                )

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
