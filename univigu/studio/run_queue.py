"""The studio's side of gradio's queue: Cancel gets through a full queue and reaches the runs still waiting in it.

gradio turns away every event once ``max_size`` events wait, a cancel included, and ``gradio_client`` joins the
queue even for ``queue=False`` events (the page posts those past the queue). :func:`enable_queue` keeps the limit
itself, for runs only, by wrapping the queue's ``push`` (the gradio internals touched: ``Blocks._queue``,
``Queue.push(body, request, username)`` and ``route_utils.get_fn``; ``tests/test_app_api.py`` fails if they move):

- control events (``concurrency_id=CONTROL``: Cancel) always join, however many runs wait;
- every other event joining is stamped with its session's cancel generation (:meth:`RunStore.generation`), so a
  run that leaves the queue after its session pressed Cancel (or closed its page) ends at once as cancelled,
  before it decodes or computes anything (:func:`joined_generation`, :meth:`RunStore.cancelled_since`).
"""

import gradio as gr
from gradio import route_utils

from .runs import RunStore

CONTROL = "control"  # the concurrency group of Cancel: never queued behind runs, never turned away
_STAMP = "univigu_cancel_generation"  # on the joining request's state, read back by the run's handler


def enable_queue(demo: gr.Blocks, store: RunStore, max_size: int | None, default_concurrency_limit: int = 4) -> None:
    """``demo.queue(...)`` with at most ``max_size`` events waiting, control events exempt."""
    demo.queue(max_size=None, default_concurrency_limit=default_concurrency_limit)
    queue = demo._queue
    push = queue.push

    async def push_unless_full(body, request, username):
        try:
            fn = route_utils.get_fn(queue.blocks, None, body)
        except Exception:  # an unknown function: gradio's own push answers
            return await push(body, request, username)
        if fn.concurrency_id != CONTROL:
            if max_size is not None and len(queue) >= max_size:
                return False, f"Queue is full. Max size is {max_size} and size is {len(queue)}.", "queue_full"
            stamp_joined(request, store.generation(body.session_hash or "anonymous"))
        return await push(body, request, username)

    queue.push = push_unless_full


def stamp_joined(http_request, generation: int) -> None:
    """Record on a joining request (starlette's, which the run's ``gr.Request`` wraps) its session's generation."""
    setattr(http_request.state, _STAMP, generation)


def joined_generation(request) -> int | None:
    """The cancel generation a run's session had when the run joined the queue (None: not through the queue)."""
    state = getattr(getattr(request, "request", None), "state", None)
    return getattr(state, _STAMP, None) if state is not None else None
