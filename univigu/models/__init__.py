from .transformer_univigu import UniViGUTransformer, UniViGUTransformerOutput

__all__ = ["UniViGUTransformer", "UniViGUTransformerOutput"]
