"""Uni-ViGU: unified video generation and understanding on a Wan2.1 video diffusion transformer."""

from .models import UniViGUTransformer, UniViGUTransformerOutput

__all__ = ["UniViGUTransformer", "UniViGUTransformerOutput"]
__version__ = "0.1.0"
