"""Errors become one-line notices: a user's input, a cancel, or (logged with its traceback) a failure.

Bad input raises ``gr.Error`` with a short message (the API client raises ``AppError`` with it).
"""

import functools
import logging

import gradio as gr

from ..pipeline_text import PromptError
from ..pipeline_univigu import Cancelled
from ..video_io import VideoError
from .checks import UserError

log = logging.getLogger("univigu.studio")


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
def user_message(err: BaseException) -> gr.Error:
    """The notice for an exception: the user's input, a cancel, or (logged) something unexpected."""
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, Cancelled):
        return gr.Error(f"Cancelled ({err}). Press Run to start again.", title="Cancelled", print_exception=False)
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
