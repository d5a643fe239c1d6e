"""The denoising scrubber: pick a run and a step to see the clip and the text predicted there, or play it."""

import gradio as gr

from . import render
from .engine import Studio
from .errors import guarded
from .runs import RunRecord, session_of


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
    # the label above the strip, not over it: gradio draws an image's label on top of its first rows
    note = f"**{label}**, frames left to right: {note}" if note else f"**{label}**, frames left to right"
    return [path, note, text, stats, render.step_info(step), gr.Button(visible=projected)]


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
        return studio.store.get(session_of(request), run_id)

    def latest_of(task: str):
        """The event showing the session's latest ``task`` run (the panel hidden while it has none)."""

        @guarded
        def show_latest(request: gr.Request):
            runs = studio.store.runs(session_of(request))
            mine = [r for r in runs if r.task == task]
            record = mine[-1] if mine else None
            choices = [(r.label, r.run_id) for r in reversed(runs)]
            dropdown = gr.Dropdown(choices=choices, value=record.run_id if record else None)
            views = _views(studio, record, None)
            return [gr.Column(visible=record is not None), dropdown, _slider(record), *views, gr.Timer(active=False)]

        return show_latest

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
        "latest_of": latest_of,
        "select_run": select_run,
        "show_step": show_step,
        "decode_step": decode_step,
        "play": play,
        "tick": tick,
    }


def build_scrubber(studio: Studio):
    """Lay out the scrubber in the current ``gr.Blocks`` (hidden until the shown tab has a run) and wire its events.

    Returns ``latest(task)``: the event (``fn``, ``inputs``, ``outputs``, ...) that shows the session's latest run of
    ``task``; a task's tab fires it when it is selected and after each of its runs, finished or failed.
    """
    scrub = make_scrubber_handlers(studio)
    private = {"api_visibility": "private"}
    with gr.Column(visible=False, elem_id="uv-denoising") as panel:
        gr.Markdown(
            "## Denoising\nEvery run keeps its trajectory: pick a run and a step to see the clip and "
            "the text predicted there."
        )
        with gr.Row():
            run_select = gr.Dropdown(label="Run", choices=[], interactive=True, scale=4, elem_id="uv-run-select")
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
                frame_note = gr.Markdown(elem_id="uv-frame-note")
                frame_view = gr.Image(
                    label="Predicted clip (frames left to right)",
                    show_label=False,
                    type="filepath",
                    interactive=False,
                    format="png",
                    elem_id="uv-frame",
                    buttons=["download", "fullscreen"],
                )
                decode_btn = gr.Button("Decode this step", visible=False, size="sm", elem_id="uv-decode")
            with gr.Column():
                text_view = gr.HTML(render.text_panel_html(None), elem_id="uv-text")
                stats_view = gr.HTML(elem_id="uv-stats")
        timer = gr.Timer(0.6, active=False)

    views = [frame_view, frame_note, text_view, stats_view, step_info, decode_btn]

    def latest(task: str) -> dict:
        return dict(
            fn=scrub["latest_of"](task),
            inputs=None,
            outputs=[panel, run_select, step, *views, timer],
            show_progress="hidden",
            **private,
        )

    run_select.input(scrub["select_run"], run_select, [step, *views, timer], show_progress="hidden", **private)
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
    play_btn.click(scrub["play"], [run_select, step], [timer, step, *views], show_progress="hidden", **private)
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
    return latest
