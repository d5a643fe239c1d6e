"""Flows for both modalities, in one time convention.

``sigma`` is the noise level everywhere in this package: ``sigma = 1`` is pure noise (or the text
source), ``sigma = 0`` is clean data. The transformer takes ``timestep = sigma * 1000`` for video and
text alike; :func:`to_timestep` is the one place that conversion happens. (The discrete-flow
literature writes ``t = 1 - sigma`` with ``t = 1`` clean; the text-flow code converts at its edge.)
"""

from .text_discrete import DiscreteTextFlow
from .text_embedding import EmbeddingTextFlow
from .time import sample_sigmas, shift_sigmas, to_timestep
from .uniflow import UniFlowLoss, UniFlowLossOutput, UniFlowTargets, text_flow_for
from .video import VideoFlow

__all__ = [
    "DiscreteTextFlow",
    "EmbeddingTextFlow",
    "UniFlowLoss",
    "UniFlowLossOutput",
    "UniFlowTargets",
    "VideoFlow",
    "sample_sigmas",
    "shift_sigmas",
    "text_flow_for",
    "to_timestep",
]
