"""Uni-ViGU Studio: text-to-video, video captioning and joint generation in the browser, with every run's
denoising kept for scrubbing step by step.

    python app.py                        # the bundled ShapesWorld model on http://127.0.0.1:7860
    python app.py --model PATH_OR_HUB_ID # any UniViGU pipeline folder (e.g. a converted official checkpoint)
    UNIVIGU_MODEL=PATH python app.py     # the same through the environment
    python app.py --model tiny           # development: a tiny model with random weights

Fully offline: no analytics, no version check, no share link unless ``--share``. The API (``gradio_client``)
offers ``/text_to_video``, ``/caption``, ``/joint`` and ``/cancel`` (never turned away by a full queue; it stops the
session's running run and the runs it has waiting).

    python app.py --mcp                  # also MCP tools for agents: http://127.0.0.1:7860/gradio_api/mcp/
    UNIVIGU_MCP=1 python app.py          # the same through the environment (a Space)

With ``--mcp`` the three tasks are MCP tools (streamable HTTP at ``/gradio_api/mcp/``) described by their
docstrings; a clip goes in as a URL (e.g. one gradio serves) and comes back as one.
"""

import os

# Before gradio is imported: no analytics and, with them, no version check.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

if importlib.util.find_spec("gradio") is None:  # the library installs without the studio's packages
    sys.exit("error: the studio needs gradio: pip install 'univigu[studio]' (or, in a clone, bash scripts/setup.sh)")

from univigu.loading import BUNDLED_MODEL, default_model  # noqa: E402
from univigu.offload import DTYPES, OFFLOAD_MODES, default_device  # noqa: E402
from univigu.studio.step_previews import PREVIEW_MODES  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "--model",
        default=None,
        help="UniViGU pipeline folder or Hugging Face id, or 'tiny' for a random development model "
        f"(default: $UNIVIGU_MODEL or {os.path.relpath(default_model())})",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the best available)")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", *DTYPES],
        help="weights dtype (auto: bfloat16 on a GPU, float32 on the CPU)",
    )
    parser.add_argument("--offload", default="none", choices=OFFLOAD_MODES, help="memory mode (see univigu.offload)")
    parser.add_argument("--vae-tiling", action="store_true", help="decode big clips tile by tile")
    parser.add_argument(
        "--preview",
        default="auto",
        choices=PREVIEW_MODES,
        help="per-step previews: VAE decode, latent-to-RGB projection, or auto (by model size)",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--mcp",
        action="store_true",
        default=os.environ.get("UNIVIGU_MCP", "").lower() in ("1", "true", "yes"),
        help="also serve the tasks as MCP tools for agents at /gradio_api/mcp/ (default: $UNIVIGU_MCP)",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="runs at once (others wait in the queue)")
    parser.add_argument(
        "--max-queue", type=int, default=16, help="runs that may wait; more are turned away (Cancel never is)"
    )
    parser.add_argument("--max-steps", type=int, default=100, help="the most denoising steps a request may ask")
    parser.add_argument("--output-dir", default=None, help="where clips and previews go (default: a temp folder)")
    parser.add_argument("--examples-dir", default=None, help="example clips (default: assets/examples)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log = logging.getLogger("univigu.studio")

    import gradio as gr

    from univigu.loading import ModelLoadError
    from univigu.offload import Placement
    from univigu.studio import render
    from univigu.studio.checks import Limits, UserError
    from univigu.studio.engine import Settings, Studio
    from univigu.studio.examples import EXAMPLES_DIR, load_examples
    from univigu.studio.run_queue import enable_queue
    from univigu.studio.ui import build_demo

    device = args.device or default_device()
    dtype = args.dtype if args.dtype != "auto" else ("float32" if device.startswith("cpu") else "bfloat16")
    settings = Settings(Placement(device, dtype, args.offload, args.vae_tiling), preview=args.preview)
    model = args.model or default_model()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="univigu-studio-")
    examples_dir = os.path.abspath(args.examples_dir or EXAMPLES_DIR)
    banner, card = "", os.path.join(BUNDLED_MODEL, "README.md")
    try:
        if model == "tiny":
            banner = "Development mode: a tiny model with random weights; its outputs are noise."
        elif os.path.exists(model) and os.path.realpath(model) == os.path.realpath(BUNDLED_MODEL):
            banner = (
                "A small demonstration model: 3.6 M parameters trained on a CPU on ShapesWorld, a made-up world of "
                "coloured shapes that move. It knows only that world's words, and it is not a capable captioner or "
                f"generator: see [its card's numbers]({card_url(card)})."
            )
        elif not os.path.exists(model) and model == default_model() and not os.environ.get("UNIVIGU_MODEL"):
            print(
                f"error: the bundled model is missing ({os.path.relpath(model)}). "
                "Pass --model PATH_OR_HUB_ID, "
                "set UNIVIGU_MODEL, or try --model tiny.",
                file=sys.stderr,
            )
            return 2
        studio = Studio(
            model,
            settings,
            output_dir,
            Limits(max_steps=args.max_steps),
            concurrency=args.concurrency,
        )
    except (ModelLoadError, UserError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log.info("model %s on %s (%s, offload %s); outputs in %s", model, device, dtype, args.offload, output_dir)

    demo = build_demo(studio, load_examples(examples_dir), banner=banner)
    enable_queue(demo, studio.store, max_size=args.max_queue)  # Cancel is exempt from the limit
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            show_error=False,
            allowed_paths=[output_dir, examples_dir, card],
            max_file_size=f"{studio.limits.max_upload_mb}mb",
            footer_links=["api", "settings"],
            ssr_mode=False,
            pwa=False,
            mcp_server=args.mcp,
            theme=gr.themes.Default(),
            css=render.CSS,
            quiet=True,  # gradio's lines name launch()'s arguments; ours name the flags
            prevent_thread_lock=True,
        )
    except OSError as err:
        print(f"error: could not serve on {args.host}:{args.port} ({err}); pick another --port", file=sys.stderr)
        return 2
    print(f"* Running on local URL:  {demo.local_url}", flush=True)
    if demo.mcp_error:
        print(f"error: {demo.mcp_error}", file=sys.stderr)
    elif args.mcp:
        print(f"* MCP tools for agents: {demo.local_url}gradio_api/mcp/ (streamable HTTP)", flush=True)
    if demo.share_url is None:
        print("* To create a public link, run with --share.", flush=True)
    demo.block_thread()
    return 0


def card_url(card: str) -> str:
    """A link from the page to the bundled model's card, served by gradio's file route (the card is in
    ``allowed_paths``): a path relative to where the studio runs (a Space's repo root), else the absolute one."""
    path = os.path.relpath(card)
    path = os.path.abspath(card) if path.startswith("..") else path
    return f"gradio_api/file={path.replace(os.sep, '/')}#evaluation"


if __name__ == "__main__":
    sys.exit(main())
