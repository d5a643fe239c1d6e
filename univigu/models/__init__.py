from .transformer_univigu import UniViGUTransformer, UniViGUTransformerOutput, append_positions

__all__ = ["UniViGUTransformer", "UniViGUTransformerOutput", "append_positions"]
