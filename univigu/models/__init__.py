from .transformer_univigu import UniViGUTransformer, UniViGUTransformerOutput, append_positions
from .wan_adapter import WanAdapter, position_channels

__all__ = ["UniViGUTransformer", "UniViGUTransformerOutput", "WanAdapter", "append_positions", "position_channels"]
