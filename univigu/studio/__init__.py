"""Uni-ViGU Studio: the Gradio app behind ``app.py`` (UI only; the model lives in ``univigu``).

- ``engine``: the placed pipeline (``Studio``, its ``Settings``) and streamed, cancellable runs; a ``Studio`` holds
  an ``InputChecks`` (``checks``), an ``UploadChecks`` (``uploads``: probing and decoding uploaded clips) and a
  ``StepPreviews`` (``step_previews``). ``request``: a run as asked (``RunRequest``) and as checked once (``Run``).
- ``runs``: the per-session run history, the cancel switches and each session's cancel generation;
  ``run_queue``: gradio's queue, with Cancel exempt from its limit and reaching the runs still waiting in it.
- ``ui``: the page (header, task tabs); ``tasks``: the run endpoints and ZeroGPU; ``scrubber``: the denoising
  scrubber; ``settings_panel``: the settings; ``errors``: exceptions as one-line notices.
- ``render``: HTML for tokens, the per-step plot and progress.
- ``preview``: the fitted latent-to-RGB projection (fast previews of big VAEs' latents) and filmstrips.
- ``examples``: the example clips in ``assets/examples``.

Importing this package does not import gradio (``app.py`` must switch analytics off first).
"""
