"""The bundled model's pipeline folder: the components and a trained transformer as a ``UniViGUPipeline``.

    python -m training.shapesworld.assemble --components runs/components --transformer runs/refine/final \
        --out assets/univigu-shapesworld --shift 3.0
"""

import argparse

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from univigu.pipeline_univigu import UniViGUPipeline

from ..components import load_components, load_transformer
from .spec import FPS, HEIGHT, NUM_FRAMES, WIDTH


def assemble(components_dir: str, transformer_dir: str, out_dir: str, shift: float) -> UniViGUPipeline:
    """Write a ``UniViGUPipeline`` folder from the components and a trained UniViGU transformer.

    A base generator (``WanTransformer3DModel``) is converted with :func:`uni_from_base`: with its text
    stream masked that pipeline's text-to-video is the base's, through the UniViGU sampler."""
    tokenizer, text_encoder, vae = load_components(components_dir)
    transformer = load_transformer(transformer_dir, tokenizer).eval()
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
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    try:
        assemble(args.components, args.transformer, args.out, args.shift)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    print(f"wrote the pipeline to {args.out}")


if __name__ == "__main__":
    main()
