"""Uni-ViGU Studio: the Gradio app behind ``app.py`` (UI only; the model lives in ``univigu``).

- ``engine``: the loaded pipeline, input checks, streamed and cancellable runs, run history, previews.
- ``ui``: the page (task tabs, denoising scrubber, settings) and the API endpoints.
- ``render``: HTML for tokens, the per-step plot and progress.
- ``preview``: per-step previews (VAE decode or a fitted latent-to-RGB projection) and filmstrips.
- ``examples``: the example clips in ``assets/examples``.

Importing this package does not import gradio (``app.py`` must switch analytics off first).
"""
