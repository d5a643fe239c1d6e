"""Telling diffusers' block caches how a :class:`UniViGUBlock` passes its streams on.

FirstBlockCache, SeaCache and MagCache look a block's inputs and outputs up in a registry of block classes that
diffusers 0.42 keeps in a private module (``diffusers.hooks._helpers``, where it registers its own blocks; there is
no public way to add one). That one import lives here, made when a cache is first enabled: a diffusers without
it costs the step caches only, with a one-line error, and ``import univigu`` still works.
"""

_registered: set[type] = set()


def register_block(block_class) -> None:
    """Register ``block_class`` (a block taking and returning ``(video, text)``) with diffusers' block registry."""
    if block_class in _registered:
        return
    try:
        from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    except ImportError as e:
        raise ValueError(
            "this diffusers version has no transformer block registry, which the step caches need here: "
            "use no step cache ('none'), or diffusers 0.42"
        ) from e

    class UniViGUBlockMetadata(TransformerBlockMetadata):
        """A dual-stream block's streams are ``hidden_states`` and ``encoder_hidden_states`` to the hooks
        (FirstBlockCache and MagCache look those names up whatever the metadata says). Ours are ``video`` and
        ``text``, ``encoder_hidden_states`` being the prompt every block cross-attends to, so those two lookups
        are read as ``video`` and ``text``; a skipped block hands both on."""

        STREAMS = {"hidden_states": "video", "encoder_hidden_states": "text"}

        def _get_parameter_from_args_kwargs(self, identifier: str, args=(), kwargs=None):
            return super()._get_parameter_from_args_kwargs(self.STREAMS.get(identifier, identifier), args, kwargs)

    TransformerBlockRegistry.register(
        block_class,
        UniViGUBlockMetadata(
            return_hidden_states_index=0,
            return_encoder_hidden_states_index=1,
            hidden_states_argument_name="video",
            encoder_hidden_states_argument_name="text",
        ),
    )
    _registered.add(block_class)
