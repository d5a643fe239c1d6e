"""The studio page: three task tabs, the denoising scrubber and the settings panel.

API endpoints (``gradio_client``): ``/text_to_video``, ``/caption``, ``/joint`` and ``/cancel``. Bad input
raises ``gr.Error`` with a short message (the client raises ``AppError`` with it); nothing else reaches
the user: unexpected errors are logged with their traceback and reported in one line.
"""

import functools
import logging
import random

import gradio as gr

from ..offload import DTYPES, OFFLOAD_MODES, dtype_requirements, offload_requirements
from ..pipeline_univigu import CAPTION_STEPS, Cancelled, PromptError
from ..video_io import VideoError
from . import render
from .engine import (
    PREVIEW_MODES,
    TASK_TITLES,
    RunRecord,
    Settings,
    Studio,
    UserError,
    available_devices,
    device_requirements,
)
from .preview import cached_projection

log = logging.getLogger("univigu.studio")

try:  # Hugging Face ZeroGPU: borrow a GPU for each run; without the package (or off Spaces) a no-op
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:  # pragma: no cover - depends on the machine

    def gpu(fn):
        return fn


# ------------------------------------------------------------------------------------------------
# Components whose range errors name the field (gradio's own say only "Value 5 is less than ...")
def named_range_errors(component, reason=None):
    """Make ``component``'s input errors name it (gradio's say only "Value 5 is less than ...").

    ``reason(value)`` may explain a refused choice (e.g. why an offload mode can't run here). Patched on
    the instance: a subclass would make gradio write a ``.pyi`` stub next to this module.
    """
    parent = component.preprocess

    def preprocess(payload):
        try:
            return parent(payload)
        except gr.Error as err:
            why = reason(payload) if reason is not None else None
            raise gr.Error(
                f"{component.label}: {why or err.message}",
                title="Not available" if why else "Out of range",
                print_exception=False,
            ) from None

    component.preprocess = preprocess
    return component


def slider(**kwargs) -> gr.Slider:
    return named_range_errors(gr.Slider(**kwargs))


def number(**kwargs) -> gr.Number:
    return named_range_errors(gr.Number(**kwargs))


# ------------------------------------------------------------------------------------------------
# Errors -> one-line messages
def _session(request: gr.Request | None) -> str:
    return (getattr(request, "session_hash", None) or "anonymous") if request is not None else "anonymous"


def user_message(err: BaseException) -> gr.Error:
    """The notice for an exception: the user's input, a cancel, or (logged) something unexpected."""
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, Cancelled):
        return gr.Error(
            f"Cancelled ({err}). Press Run to start again.", title="Cancelled", print_exception=False
        )
    if isinstance(err, (UserError, PromptError, VideoError)):
        return gr.Error(str(err), title="Check the input", print_exception=False)
    log.error("run failed", exc_info=err)
    first = (str(err).strip().splitlines() or [""])[0][:200]
    return gr.Error(
        f"The run failed ({type(err).__name__}{': ' + first if first else ''}). The server is fine; "
        "try again, or change the settings. Details are in the server log.",
        title="Something went wrong",
        print_exception=False,
    )


def guarded(fn):
    """Wrap a handler (function or generator) so every exception becomes a short ``gr.Error``."""
    import inspect

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # every failure becomes a message
                raise user_message(err) from None
    else:

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # every failure becomes a message
                raise user_message(err) from None

    return wrapper


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
        session = _session(request)
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
        stopped = studio.store.cancel(_session(request), wait=15)
        records = [r for r in stopped if r is not None]
        if not stopped:
            return '<div class="uv-status">Nothing is running.</div>'
        where = ", ".join(f"run #{r.run_id} after step {len(r.trajectory)} of {r.num_steps}" for r in records)
        return (
            f'<div class="uv-status" data-cancelled="1">Cancelled {where or "the run"}. '
            "Press Run to start again.</div>"
        )

    return {"text_to_video": text_to_video, "caption": caption, "joint": joint, "cancel": cancel}


# ------------------------------------------------------------------------------------------------
# The scrubber
def _views(studio: Studio, record: RunRecord | None, k: int | None, full: bool = False) -> list:
    """[frame image, frame note, text html, stats html, step info, decode button]"""
    if record is None or not record.trajectory:
        empty = render.text_panel_html(None)
        return [None, "", empty, "", "", gr.Button(visible=False)]
    k = max(1, min(int(k or len(record.trajectory)), len(record.trajectory)))
    step = record.trajectory[k - 1]
    path, note = studio.step_preview(record, k, full=full)
    text = render.text_panel_html(step, held_prompt=record.prompt)
    stats = render.stats_svg(record.trajectory, k)
    projected = record.task != "caption" and path is not None and path.endswith("-project.png")
    label = "The input clip (held clean)" if record.task == "caption" else f"Clip predicted at step {k}"
    image = gr.Image(value=path, label=f"{label}: frames left to right")
    return [image, note, text, stats, render.step_info(step), gr.Button(visible=projected)]


def _slider(record: RunRecord | None, k: int | None = None) -> gr.Slider:
    n = len(record.trajectory) if record else 1  # gradio wants minimum < maximum: a 1-step run gets 0..1
    return gr.Slider(
        minimum=1 if n > 1 else 0,
        maximum=n,
        step=1,
        value=min(k or n, n) if record else 1,
        interactive=bool(record and n > 1),
        label=f"Denoising step (1–{n})" if record else "Denoising step",
    )


def make_scrubber_handlers(studio: Studio) -> dict:
    def record_of(run_id, request) -> RunRecord | None:
        return studio.store.get(_session(request), run_id)

    @guarded
    def show_latest(request: gr.Request):
        runs = studio.store.runs(_session(request))
        record = runs[-1] if runs else None
        choices = [(r.label, r.run_id) for r in reversed(runs)]
        dropdown = gr.Dropdown(choices=choices, value=record.run_id if record else None)
        return [dropdown, _slider(record), *_views(studio, record, None), gr.Timer(active=False)]

    @guarded
    def select_run(run_id, request: gr.Request):
        record = record_of(run_id, request)
        return [_slider(record), *_views(studio, record, None), gr.Timer(active=False)]

    @guarded
    def show_step(run_id, k, request: gr.Request):
        return _views(studio, record_of(run_id, request), k)

    @guarded
    def decode_step(run_id, k, request: gr.Request):
        return _views(studio, record_of(run_id, request), k, full=True)[:2]

    @guarded
    def play(run_id, k, request: gr.Request):
        record = record_of(run_id, request)
        if record is None or len(record.trajectory) < 2:
            return [gr.Timer(active=False), gr.skip(), *[gr.skip()] * 6]
        n = len(record.trajectory)
        k = 1 if int(k or n) >= n else int(k)
        return [gr.Timer(active=True), gr.Slider(value=k), *_views(studio, record, k)]

    @guarded
    def tick(run_id, k, request: gr.Request):
        record = record_of(run_id, request)
        if record is None:
            return [gr.skip(), *[gr.skip()] * 6, gr.Timer(active=False)]
        n = len(record.trajectory)
        k = min(int(k or 0) + 1, n)
        return [gr.Slider(value=k), *_views(studio, record, k), gr.Timer(active=k < n)]

    return {
        "show_latest": show_latest,
        "select_run": select_run,
        "show_step": show_step,
        "decode_step": decode_step,
        "play": play,
        "tick": tick,
    }


# ------------------------------------------------------------------------------------------------
# Settings
def unavailable_reasons(device: str) -> list[str]:
    reasons = []
    for dev in ("cuda", "mps"):
        if dev not in available_devices():
            reasons.append(f"device {dev}: {device_requirements(dev).split(': ', 1)[-1]}")
    reasons += [f"dtype {d}: {r}" for d in DTYPES if (r := dtype_requirements(d, device))]
    reasons += [f"offload {m}: {r}" for m in OFFLOAD_MODES if (r := offload_requirements(m, device))]
    return reasons


def _choices(device: str) -> tuple[list[str], list[str]]:
    dtypes = [d for d in DTYPES if not dtype_requirements(d, device)]
    modes = [m for m in OFFLOAD_MODES if not offload_requirements(m, device)]
    return dtypes, modes


def _reasons_md(device: str) -> str:
    reasons = unavailable_reasons(device)
    return ("**Not available here:**\n" + "\n".join(f"- {r}" for r in reasons)) if reasons else ""


def make_settings_handlers(studio: Studio) -> dict:
    @guarded
    def on_device(device):
        dtypes, modes = _choices(device)
        current = studio.settings
        return (
            gr.Dropdown(choices=dtypes, value=current.dtype if current.dtype in dtypes else dtypes[0]),
            gr.Dropdown(choices=modes, value=current.offload if current.offload in modes else "none"),
            _reasons_md(device),
        )

    @guarded
    def apply(device, dtype, offload, vae_tiling, preview):
        settings = Settings(
            device=device, dtype=dtype, offload=offload, vae_tiling=bool(vae_tiling), preview=preview
        )
        return f"Applied: {studio.apply_settings(settings)}."

    return {"on_device": on_device, "apply": apply}


# ------------------------------------------------------------------------------------------------
# The page
def _prompt_examples(studio: Studio, examples: list[dict]) -> list[str]:
    prompts = [
        e["prompt"] for e in examples if e.get("prompt") and not studio.pipe.unknown_words(e["prompt"])
    ]
    return list(dict.fromkeys(prompts)) or [studio.example_prompt()]


def build_demo(studio: Studio, examples: list[dict] | None = None, banner: str = "") -> gr.Blocks:
    examples = examples or []
    f0, h0, w0 = studio.default_size
    lim = studio.limits
    handlers = make_handlers(studio)
    scrub = make_scrubber_handlers(studio)
    settings_fns = make_settings_handlers(studio)
    prompts = _prompt_examples(studio, examples)
    run_group = {
        "concurrency_id": "pipeline",
        "concurrency_limit": studio.concurrency,
        "show_progress": "minimal",
    }
    private = {"api_visibility": "private"}

    # delete_cache: gradio's copies of clips and previews older than 2 h go, hourly (a long-running Space).
    with gr.Blocks(title="Uni-ViGU Studio", analytics_enabled=False, delete_cache=(3600, 7200)) as demo:
        gr.Markdown(
            "# Uni-ViGU Studio\nOne diffusion transformer for text-to-video, video captioning "
            "and both at once. "
            f"Model `{studio.model}`: clips of {f0} frames at {w0}x{h0}."
            + (f"\n\n> {banner}" if banner else "")
        )

        def generation_inputs(prefix: str):
            prompt = gr.Textbox(
                label="Prompt", lines=2, placeholder=prompts[0], elem_id=f"uv-{prefix}-prompt"
            )
            with gr.Row():
                seed = number(
                    label="Seed",
                    value=0,
                    precision=0,
                    minimum=0,
                    maximum=lim.max_seed,
                    elem_id=f"uv-{prefix}-seed",
                    scale=4,
                )
                dice = gr.Button("Random seed", scale=1, size="sm")
            steps = slider(
                label="Steps",
                minimum=1,
                maximum=lim.max_steps,
                step=1,
                value=min(20, lim.max_steps),
                elem_id=f"uv-{prefix}-steps",
            )
            guidance = slider(
                label="Guidance", minimum=lim.min_guidance, maximum=lim.max_guidance, step=0.5, value=5.0
            )
            with gr.Accordion("Clip size (what this model supports)", open=False):
                frames = slider(label="Frames", minimum=1, maximum=f0, step=studio.frames_step, value=f0)
                height = slider(
                    label="Height", minimum=studio.size_step, maximum=h0, step=studio.size_step, value=h0
                )
                width = slider(
                    label="Width", minimum=studio.size_step, maximum=w0, step=studio.size_step, value=w0
                )
            dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, **private)
            gr.Examples([[p] for p in prompts], inputs=[prompt], label="Example prompts", **private)
            return prompt, seed, steps, guidance, frames, height, width

        def run_buttons(prefix: str):
            with gr.Row():
                run = gr.Button("Run", variant="primary", elem_id=f"uv-{prefix}-run")
                stop = gr.Button("Cancel", variant="stop", elem_id=f"uv-{prefix}-cancel")
            return run, stop

        def clip_output(prefix: str):
            return gr.Video(
                label="Clip",
                height=320,
                interactive=False,
                loop=True,
                buttons=["download"],
                elem_id=f"uv-{prefix}-video",
            )

        with gr.Tabs():
            with gr.Tab("Text to video", id="t2v"), gr.Row():
                with gr.Column():
                    t2v_in = generation_inputs("t2v")
                    t2v_run, t2v_stop = run_buttons("t2v")
                with gr.Column():
                    t2v_video = clip_output("t2v")
                    t2v_status = gr.HTML(elem_id="uv-t2v-status")
                    with gr.Accordion("Trajectory data (JSON)", open=False):
                        t2v_traj = gr.JSON(label="Trajectory")
            with gr.Tab("Video captioning", id="caption"), gr.Row():
                with gr.Column():
                    cap_video = gr.Video(
                        label="Clip to describe (mp4, webm, avi, mov, gif)",
                        height=320,
                        sources=["upload"],
                        elem_id="uv-cap-input",
                    )
                    if examples:
                        gr.Examples(
                            [[e["path"]] for e in examples],
                            inputs=[cap_video],
                            label="Example clips",
                            **private,
                        )
                    cap_prompt = gr.Textbox(value="", label="Hint (optional prompt)", lines=1)
                    with gr.Row():
                        cap_seed = number(
                            label="Seed", value=0, precision=0, minimum=0, maximum=lim.max_seed, scale=4
                        )
                        cap_dice = gr.Button("Random seed", scale=1, size="sm")
                    cap_steps = slider(
                        label="Steps",
                        minimum=1,
                        maximum=lim.max_steps,
                        step=1,
                        value=min(CAPTION_STEPS, lim.max_steps),
                    )
                    cap_run, cap_stop = run_buttons("cap")
                    cap_dice.click(lambda: random.randint(0, 2**31 - 1), None, cap_seed, **private)
                with gr.Column():
                    cap_text = gr.Textbox(label="Caption", lines=3, interactive=False, elem_id="uv-cap-text")
                    cap_notes = gr.Markdown()
                    cap_view = gr.Video(
                        label="What the model saw",
                        interactive=False,
                        loop=True,
                        buttons=["download"],
                        height=240,
                    )
                    cap_status = gr.HTML(elem_id="uv-cap-status")
                    with gr.Accordion("Trajectory data (JSON)", open=False):
                        cap_traj = gr.JSON(label="Trajectory")
            with gr.Tab("Joint generation", id="joint"), gr.Row():
                with gr.Column():
                    joint_in = generation_inputs("joint")
                    joint_run, joint_stop = run_buttons("joint")
                with gr.Column():
                    joint_video = clip_output("joint")
                    joint_text = gr.Textbox(
                        label="Caption", lines=2, interactive=False, elem_id="uv-joint-text"
                    )
                    joint_status = gr.HTML(elem_id="uv-joint-status")
                    with gr.Accordion("Trajectory data (JSON)", open=False):
                        joint_traj = gr.JSON(label="Trajectory")

        with gr.Column():
            gr.Markdown(
                "## Denoising\nEvery run keeps its trajectory: pick a run and a step to see the clip and "
                "the text predicted there."
            )
            with gr.Row():
                run_select = gr.Dropdown(
                    label="Run", choices=[], interactive=True, scale=4, elem_id="uv-run-select"
                )
                play_btn = gr.Button("▶ Play", scale=1, elem_id="uv-play")
                pause_btn = gr.Button("Pause", scale=1, elem_id="uv-pause")
            step = gr.Slider(
                label="Denoising step",
                minimum=0,
                maximum=1,
                step=1,
                value=1,
                interactive=False,
                elem_id="uv-step",
            )
            step_info = gr.Markdown(elem_id="uv-step-info")
            with gr.Row(equal_height=False):
                with gr.Column():
                    frame_view = gr.Image(
                        label="Predicted clip (frames left to right)",
                        type="filepath",
                        interactive=False,
                        format="png",
                        elem_id="uv-frame",
                        buttons=["download", "fullscreen"],
                    )
                    frame_note = gr.Markdown(elem_id="uv-frame-note")
                    decode_btn = gr.Button("Decode this step", visible=False, size="sm", elem_id="uv-decode")
                with gr.Column():
                    text_view = gr.HTML(render.text_panel_html(None), elem_id="uv-text")
                    stats_view = gr.HTML(elem_id="uv-stats")
            timer = gr.Timer(0.6, active=False)

        with gr.Accordion("Settings", open=False, elem_id="uv-settings"):
            s = studio.settings
            dtypes, modes = _choices(s.device)
            with gr.Row():
                device = named_range_errors(
                    gr.Dropdown(label="Device", choices=available_devices(), value=s.device),
                    reason=device_requirements,
                )
                dtype = named_range_errors(
                    gr.Dropdown(label="Dtype", choices=dtypes, value=s.dtype),
                    reason=lambda d: dtype_requirements(str(d), studio.settings.device),
                )
                offload = named_range_errors(
                    gr.Dropdown(label="Offload", choices=modes, value=s.offload, elem_id="uv-offload"),
                    reason=lambda m: offload_requirements(str(m), studio.settings.device),
                )
            with gr.Row():
                vae_tiling = gr.Checkbox(label="VAE tiling (less memory for big clips)", value=s.vae_tiling)
                preview = gr.Radio(
                    label="Step previews",
                    choices=list(PREVIEW_MODES),
                    value=s.preview,
                    info="auto: VAE decode for small models, a fast projection for full-size ones",
                )
            reasons = gr.Markdown(_reasons_md(s.device), elem_id="uv-settings-reasons")
            apply_btn = gr.Button("Apply settings")
            settings_status = gr.Markdown(elem_id="uv-settings-status")

        # ---- events
        views = [frame_view, frame_note, text_view, stats_view, step_info, decode_btn]
        latest = dict(
            fn=scrub["show_latest"],
            inputs=None,
            outputs=[run_select, step, *views, timer],
            show_progress="hidden",
            **private,
        )
        tasks = [
            ("text_to_video", t2v_run, t2v_stop, list(t2v_in), [t2v_video, t2v_traj, t2v_status], t2v_status),
            (
                "caption",
                cap_run,
                cap_stop,
                [cap_video, cap_seed, cap_steps, cap_prompt],
                [cap_text, cap_notes, cap_view, cap_traj, cap_status],
                cap_status,
            ),
            (
                "joint",
                joint_run,
                joint_stop,
                list(joint_in),
                [joint_video, joint_text, joint_traj, joint_status],
                joint_status,
            ),
        ]
        for k, (name, run, stop, inputs, outputs, status) in enumerate(tasks):
            event = run.click(handlers[name], inputs, outputs, api_name=name, **run_group)
            event.then(**latest)  # on success; gradio's frontend skips .then() after an error, so also:
            event.failure(**latest)  # a cancelled run keeps its steps for scrubbing
            stop.click(
                handlers["cancel"],
                None,
                status,
                concurrency_id="control",
                concurrency_limit=None,
                show_progress="hidden",
                **({"api_name": "cancel"} if k == 0 else private),
            )
        run_select.input(
            scrub["select_run"], run_select, [step, *views, timer], show_progress="hidden", **private
        )
        step.input(
            scrub["show_step"],
            [run_select, step],
            views,
            show_progress="hidden",
            trigger_mode="always_last",
            concurrency_id="scrub",
            concurrency_limit=4,
            **private,
        )
        play_btn.click(
            scrub["play"], [run_select, step], [timer, step, *views], show_progress="hidden", **private
        )
        pause_btn.click(lambda: gr.Timer(active=False), None, timer, **private)
        timer.tick(
            scrub["tick"],
            [run_select, step],
            [step, *views, timer],
            show_progress="hidden",
            concurrency_id="scrub",
            **private,
        )
        decode_btn.click(scrub["decode_step"], [run_select, step], [frame_view, frame_note], **private)
        device.change(settings_fns["on_device"], device, [dtype, offload, reasons], **private)
        apply_btn.click(
            settings_fns["apply"],
            [device, dtype, offload, vae_tiling, preview],
            settings_status,
            concurrency_id="pipeline",
            api_name="apply_settings",
            api_visibility="undocumented",
        )

        def forget_session(request: gr.Request):  # a closed tab stops its runs and frees its history
            studio.store.drop_session(_session(request))

        demo.unload(forget_session)
    return demo
