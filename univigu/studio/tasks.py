"""The run endpoints: ``/text_to_video``, ``/caption``, ``/joint`` stream progress and end with the clip,
the text and the run's trajectory; ``/cancel`` stops a session's runs.
"""

import logging

import gradio as gr

from ..pipeline_univigu import Cancelled
from . import render
from .engine import Studio
from .errors import guarded
from .preview import cached_projection
from .runs import TASK_TITLES, RunRecord, session_of

log = logging.getLogger("univigu.studio")

try:  # Hugging Face ZeroGPU: borrow a GPU for each run; without the package (or off Spaces) a no-op
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:  # pragma: no cover - depends on the machine

    def gpu(fn):
        return fn


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
):
    """Check the inputs, run ``task`` streaming ("progress", html) and finally ("done", RunRecord).

    Stores nothing itself: under ZeroGPU this runs in a borrowed GPU's process, so records travel back.
    """
    steps, seed = studio.check_steps(steps), studio.check_seed(seed)
    title = TASK_TITLES[task]
    input_frames, notes = None, []
    if task == "caption":
        prompt = studio.check_prompt(prompt, required=False)
        frames, notes = studio.load_video(video)
        input_frames, fit_notes = studio.fit(frames)
        notes += fit_notes
    else:
        prompt = studio.check_prompt(prompt, required=True)
        guidance = studio.check_guidance(guidance)
        size = studio.check_size(num_frames, height, width)
    record = studio.new_record(task, prompt, seed, steps)
    record.input_frames, record.notes = input_frames, notes

    def call(callback):
        pipe = studio.pipe
        common = {"num_inference_steps": steps, "seed": seed, "callback": callback, "return_trajectory": True}
        if task == "caption":
            return pipe.caption(input_frames, prompt=prompt, **common)
        method = pipe.text_to_video if task == "text_to_video" else pipe.joint
        return method(
            prompt, guidance_scale=guidance, num_frames=size[0], height=size[1], width=size[2], **common
        )

    yield "progress", render.progress_html(title, None, steps, note="waiting for the model…")
    output = None
    try:
        for kind, payload in studio.stream(session, call, record):
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
        log.info(
            "run #%d (%s) cancelled after step %d of %d", record.run_id, task, len(record.trajectory), steps
        )
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

    @gpu
    def on_device(session, task, *args, **kwargs):
        yield from _stream_task(studio, session, task, *args, **kwargs)

    def stream(request, task, *args, **kwargs):
        session = session_of(request)
        for kind, value in on_device(session, task, *args, **kwargs):
            if kind in ("partial", "done"):
                studio.store.add(session, value)
            if kind != "partial":
                yield kind, value

    @guarded
    def text_to_video(prompt, seed, steps, guidance, num_frames, height, width, request: gr.Request):
        for kind, value in stream(
            request, "text_to_video", prompt, seed, steps, guidance, num_frames, height, width
        ):
            if kind == "progress":
                yield gr.skip(), gr.skip(), value
            else:
                yield (
                    value.video_path,
                    _trajectory(value),
                    render.done_html(TASK_TITLES["text_to_video"], _summary(value)),
                )

    @guarded
    def caption(video, seed, steps, prompt, request: gr.Request):
        for kind, value in stream(request, "caption", prompt, seed, steps, video=video):
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
        stopped = studio.store.cancel(session_of(request), wait=15)
        records = [r for r in stopped if r is not None]
        if not stopped:
            return '<div class="uv-status">Nothing is running.</div>'
        where = ", ".join(f"run #{r.run_id} after step {len(r.trajectory)} of {r.num_steps}" for r in records)
        return (
            f'<div class="uv-status" data-cancelled="1">Cancelled {where or "the run"}. '
            "Press Run to start again.</div>"
        )

    return {"text_to_video": text_to_video, "caption": caption, "joint": joint, "cancel": cancel}
