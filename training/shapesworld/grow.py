"""A deeper transformer from a trained one: blocks added on top that start as the identity (a lab experiment).

    python -m training.shapesworld.grow --transformer runs/base/final --out runs/grown --extra-layers 2 \
        --components runs/components

A base generator is converted first, as Stage 1 converts it (that needs the tokenizer: ``--components``);
``training.train`` then trains the grown model as any other ``--init``.
"""

import argparse
from pathlib import Path

import torch
from transformers import AutoTokenizer

from univigu.models import UniViGUTransformer

from ..components import load_transformer


def grow_transformer(model: UniViGUTransformer, extra_layers: int) -> UniViGUTransformer:
    """``model`` with ``extra_layers`` more blocks on top, each the identity at first.

    A block adds its self-attention, cross-attention and FFN outputs to the residual stream; with those
    output projections at zero (both FFNs) the grown model computes exactly what ``model`` did, and the
    zeroed weights still get gradients, so training puts the new depth to use (as adaLN-zero and ControlNet
    start new layers). The other weights of the new blocks start as diffusers initialises them; float32."""
    if extra_layers < 1:
        raise ValueError(f"extra_layers must be at least 1, got {extra_layers}")
    layers = model.config.num_layers
    grown = UniViGUTransformer.from_config({**model.config, "num_layers": layers + extra_layers})
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    new_blocks = tuple(f"blocks.{i}." for i in range(layers, layers + extra_layers))
    assert not unexpected and all(k.startswith(new_blocks) for k in missing), (missing, unexpected)
    with torch.no_grad():
        for block in grown.blocks[layers:]:
            ffn_outs = [[m for m in ffn.net if isinstance(m, torch.nn.Linear)][-1] for ffn in (block.ffn, block.ffn_t)]
            for out in (block.attn1.to_out[0], block.attn2.to_out[0], *ffn_outs):
                out.weight.zero_()
                out.bias.zero_()
    return grown


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transformer", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--extra-layers", type=int, default=2)
    parser.add_argument("--components", help="the tokenizer's folder's parent: needed to convert a base generator")
    parser.add_argument(
        "--max-text-len", type=int, default=None, help="text positions of a converted base (default: the tokenizer's)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the new blocks' (and a converted base's text stream's) init"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    try:
        tokenizer = AutoTokenizer.from_pretrained(Path(args.components) / "tokenizer") if args.components else None
        torch.manual_seed(args.seed)
        model = load_transformer(args.transformer, tokenizer, max_text_len=args.max_text_len)
        torch.manual_seed(args.seed)
        grow_transformer(model, args.extra_layers).save_pretrained(args.out)
    except (ValueError, OSError) as error:  # a base generator without --components, a missing folder
        parser.error(str(error))
    print(f"wrote a {model.config.num_layers + args.extra_layers}-block transformer to {args.out}")


if __name__ == "__main__":
    main()
