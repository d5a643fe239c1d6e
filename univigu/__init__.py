"""Uni-ViGU: unified video generation and understanding on a Wan2.1 video diffusion transformer."""

from .models import UniViGUTransformer, UniViGUTransformerOutput
from .pipeline_output import UniViGUPipelineOutput
from .pipeline_text import PromptError
from .pipeline_univigu import Cancelled, UniViGUPipeline
from .trajectory import TrajectoryRecorder, TrajectoryStep

__all__ = [
    "Cancelled",
    "PromptError",
    "TrajectoryRecorder",
    "TrajectoryStep",
    "UniViGUPipeline",
    "UniViGUPipelineOutput",
    "UniViGUTransformer",
    "UniViGUTransformerOutput",
]
__version__ = "0.1.0"
