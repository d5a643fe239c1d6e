"""Uni-ViGU: unified video generation and understanding on a Wan2.1 video diffusion transformer."""

from .models import UniViGUTransformer, UniViGUTransformerOutput
from .pipeline_output import TrajectoryStep, UniViGUPipelineOutput
from .pipeline_univigu import Cancelled, PromptError, UniViGUPipeline

__all__ = [
    "Cancelled",
    "PromptError",
    "TrajectoryStep",
    "UniViGUPipeline",
    "UniViGUPipelineOutput",
    "UniViGUTransformer",
    "UniViGUTransformerOutput",
]
__version__ = "0.1.0"
