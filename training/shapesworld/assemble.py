"""The bundled model's pipeline folder: the components and a trained transformer as a ``UniViGUPipeline``.

    python -m training.shapesworld.assemble --components runs/components --transformer runs/refine/final \
        --out assets/univigu-shapesworld --shift 3.0 [--base runs/base/final --alpha 0.75]
"""

import argparse

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from univigu.pipeline_univigu import UniViGUPipeline

from ..components import load_components, load_transformer
from .interpolate import interpolate_shared
from .spec import FPS, HEIGHT, NUM_FRAMES, WIDTH


def assemble(
    components_dir: str,
    transformer_dir: str,
    out_dir: str,
    shift: float,
    base_dir: str | None = None,
    alpha: float = 1.0,
) -> UniViGUPipeline:
    """Write a ``UniViGUPipeline`` folder from the components and a trained UniViGU transformer.

    A base generator (``WanTransformer3DModel``) is converted with :func:`uni_from_base`: with its text
    stream masked that pipeline's text-to-video is the base's, through the UniViGU sampler. With
    ``base_dir`` the shared weights are interpolated toward that generator (:func:`interpolate_shared`)."""
    tokenizer, text_encoder, vae = load_components(components_dir)
    transformer = load_transformer(transformer_dir, tokenizer)
    if base_dir is not None:
        base = load_transformer(base_dir, tokenizer, max_text_len=transformer.config.max_text_len)
        transformer = interpolate_shared(transformer, base, alpha)
    transformer.eval()
    pipe = UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        default_num_frames=NUM_FRAMES,
        default_height=HEIGHT,
        default_width=WIDTH,
        fps=FPS,
    )
    pipe.save_pretrained(out_dir)
    return pipe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--components", required=True)
    parser.add_argument("--transformer", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--shift", type=float, required=True, help="the video time shift the transformer was trained with"
    )
    parser.add_argument("--base", help="a generator to interpolate the shared weights toward (with --alpha)")
    parser.add_argument(
        "--alpha", type=float, default=1.0, help="shared weights = alpha * transformer + (1 - alpha) * base"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.alpha != 1.0 and args.base is None:
        parser.error("--alpha needs --base")
    try:
        assemble(args.components, args.transformer, args.out, args.shift, args.base, args.alpha)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    print(f"wrote the pipeline to {args.out}")


if __name__ == "__main__":
    main()
