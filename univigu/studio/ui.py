"""The studio page: the header, the three task tabs and their events; the denoising scrubber (``scrubber.py``)
and the settings panel (``settings_panel.py``) lay themselves out below.

API endpoints (``gradio_client``): ``/text_to_video``, ``/caption``, ``/joint`` and ``/cancel``. Bad input
raises ``gr.Error`` with a short message (the client raises ``AppError`` with it); nothing else reaches
the user: unexpected errors are logged with their traceback and reported in one line.
"""

import random

import gradio as gr

from ..settings import CAPTION_STEPS, CAPTION_VIDEO_CACHE_INTERVAL, GENERATION_STEPS, GUIDANCE_SCALE, MAX_SEED
from .engine import Studio
from .errors import number, slider
from .run_queue import CONTROL
from .runs import session_of
from .scrubber import build_scrubber
from .settings_panel import build_settings
from .tasks import make_handlers


# ------------------------------------------------------------------------------------------------
# The page
def _prompt_examples(studio: Studio, examples: list[dict]) -> list[str]:
    prompts = [e["prompt"] for e in examples if e.get("prompt") and studio.checks.knows(e["prompt"])]
    return list(dict.fromkeys(prompts)) or [studio.checks.example_prompt()]


# Run closes the notices still showing: a new error replaces the last one instead of stacking under it
CLOSE_NOTICES = "() => { document.querySelectorAll('.toast-close').forEach((button) => button.click()); }"


def build_demo(studio: Studio, examples: list[dict] | None = None, banner: str = "") -> gr.Blocks:
    """The page. ``banner``: a markdown note under the header (a development model, or the bundled demonstration
    model with a link to its card's numbers)."""
    examples = examples or []
    sizes = studio.checks.sizes
    f0, h0, w0 = sizes.trained
    lim = studio.limits
    handlers = make_handlers(studio)
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
            f"Model `{studio.model_name}`: clips of {f0} frames at {w0}x{h0}." + (f"\n\n> {banner}" if banner else ""),
            elem_id="uv-header",
        )

        def generation_inputs(prefix: str):
            prompt = gr.Textbox(label="Prompt", lines=2, value=prompts[0], elem_id=f"uv-{prefix}-prompt")
            with gr.Row():
                seed = number(
                    label="Seed",
                    value=0,
                    precision=0,
                    minimum=0,
                    maximum=MAX_SEED,
                    elem_id=f"uv-{prefix}-seed",
                    scale=4,
                )
                dice = gr.Button("Random seed", scale=1, size="sm")
            steps = slider(
                label="Steps",
                minimum=1,
                maximum=lim.max_steps,
                step=1,
                value=min(GENERATION_STEPS, lim.max_steps),
                elem_id=f"uv-{prefix}-steps",
            )
            guidance = slider(  # 1 turns guidance off (univigu.settings.check_guidance)
                label="Guidance", minimum=1, maximum=lim.max_guidance, step=0.5, value=GUIDANCE_SCALE
            )
            with gr.Accordion("Clip size (what this model supports)", open=False):
                frames = slider(label="Frames", minimum=1, maximum=f0, step=sizes.frames_step, value=f0)
                height = slider(label="Height", minimum=sizes.size_step, maximum=h0, step=sizes.size_step, value=h0)
                width = slider(label="Width", minimum=sizes.size_step, maximum=w0, step=sizes.size_step, value=w0)
            dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, **private)
            gr.Examples([[p] for p in prompts], inputs=[prompt], label="Example prompts", **private)
            return prompt, seed, steps, guidance, frames, height, width

        def run_buttons(prefix: str):
            with gr.Row():
                run = gr.Button("Run", variant="primary", elem_id=f"uv-{prefix}-run")
                # enabled while a run of this tab goes (the events below)
                stop = gr.Button("Cancel", variant="secondary", interactive=False, elem_id=f"uv-{prefix}-cancel")
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
            with gr.Tab("Text to video", id="t2v") as t2v_tab, gr.Row():
                with gr.Column():
                    t2v_in = generation_inputs("t2v")
                    t2v_run, t2v_stop = run_buttons("t2v")
                with gr.Column():
                    t2v_video = clip_output("t2v")
                    t2v_status = gr.HTML(elem_id="uv-t2v-status")
                    with gr.Accordion("Trajectory data (JSON)", open=False):
                        t2v_traj = gr.JSON(label="Trajectory")
            with gr.Tab("Video captioning", id="caption") as cap_tab, gr.Row():
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
                            elem_id="uv-cap-examples",
                            **private,
                        )
                    cap_prompt = gr.Textbox(value="", label="Hint (optional prompt)", lines=1)
                    cap_template = gr.Textbox(
                        value="",
                        label="Fill in",
                        lines=1,
                        placeholder="e.g. a _ circle moves _*2",
                        info="ask the clip: a caption with blanks, `_` one word's position, `_*N` N of them; the rest "
                        "is kept as written. Empty: a free caption",
                        elem_id="uv-cap-template",
                    )
                    with gr.Row():
                        cap_seed = number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED, scale=4)
                        cap_dice = gr.Button("Random seed", scale=1, size="sm")
                    cap_steps = slider(
                        label="Steps",
                        minimum=1,
                        maximum=lim.max_steps,
                        step=1,
                        value=min(CAPTION_STEPS, lim.max_steps),
                    )
                    cap_cache = slider(
                        label="Clip cache interval",
                        minimum=1,
                        maximum=lim.max_steps,
                        step=1,
                        value=min(CAPTION_VIDEO_CACHE_INTERVAL, lim.max_steps),
                        info="the clip's keys and values are computed every k steps and the steps between run "
                        "only the text: faster as k grows; 1 runs the full sequence every step",
                        elem_id="uv-cap-cache",
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
            with gr.Tab("Joint generation", id="joint") as joint_tab, gr.Row():
                with gr.Column():
                    joint_in = generation_inputs("joint")
                    joint_run, joint_stop = run_buttons("joint")
                with gr.Column():
                    joint_video = clip_output("joint")
                    joint_text = gr.Textbox(label="Caption", lines=2, interactive=False, elem_id="uv-joint-text")
                    joint_status = gr.HTML(elem_id="uv-joint-status")
                    with gr.Accordion("Trajectory data (JSON)", open=False):
                        joint_traj = gr.JSON(label="Trajectory")

        latest = build_scrubber(studio)
        build_settings(studio)

        # ---- events
        tasks = [
            ("text_to_video", t2v_run, t2v_stop, list(t2v_in), [t2v_video, t2v_traj, t2v_status], t2v_status),
            (
                "caption",
                cap_run,
                cap_stop,
                [cap_video, cap_seed, cap_steps, cap_prompt, cap_cache, cap_template],
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
        for tab, name in ((t2v_tab, "text_to_video"), (cap_tab, "caption"), (joint_tab, "joint")):
            tab.select(**latest(name))  # each tab opens on its own latest run
        for k, (name, run, stop, inputs, outputs, status) in enumerate(tasks):
            run.click(None, None, None, js=CLOSE_NOTICES, **private)
            run.click(lambda: gr.Button(interactive=True), None, stop, queue=False, show_progress="hidden", **private)
            event = run.click(handlers[name], inputs, outputs, api_name=name, **run_group)
            idle = {"fn": lambda: gr.Button(interactive=False), "outputs": stop, "show_progress": "hidden", **private}
            event.then(**latest(name)).then(**idle)  # on success; gradio's frontend skips .then() after an error:
            event.failure(**latest(name)).then(**idle)  # a cancelled run keeps its steps for scrubbing
            # Cancel skips the queue: the page posts it straight to the server; gradio_client, which joins the
            # queue anyway, finds the control group exempt from its limit (run_queue.enable_queue)
            stop.click(
                handlers["cancel"],
                None,
                status,
                queue=False,
                concurrency_id=CONTROL,
                concurrency_limit=None,
                show_progress="hidden",
                **({"api_name": "cancel"} if k == 0 else private),
            )

        def forget_session(request: gr.Request):  # a closed tab stops its runs, running or waiting, and its history
            studio.store.drop_session(session_of(request))

        demo.unload(forget_session)
    name_upload_limits(demo)
    return demo


def name_upload_limits(demo: gr.Blocks) -> None:
    """Make gradio_client's refusal of a too-large upload name the field.

    The client words it "... exceeds the maximum file size of N bytes set in {label} component.", reading
    ``label`` from the component's top level of the app's config, where gradio 6 no longer puts it (it is in
    ``props``): the message read "set in  component.". Each labelled component gets its label there too.
    """
    config_file = demo.get_config_file

    def labelled_config_file():
        config = config_file()
        for component in config.get("components", []):
            label = component.get("props", {}).get("label")
            if isinstance(label, str) and label:
                component.setdefault("label", label)
        return config

    demo.get_config_file = labelled_config_file
