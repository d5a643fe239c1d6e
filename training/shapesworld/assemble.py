"""The bundled model's pipeline folder: the components and a trained transformer as a ``UniViGUPipeline``.

    python -m training.shapesworld.assemble --components runs/components --transformer runs/refine/final \
        --out assets/univigu-shapesworld --shift 3.0 [--transformer-dtype float16]

``--transformer-dtype float16`` stores the transformer's weights in half the bytes (a wider model within the
bundled folder's 50 MB); loading on the CPU gives float32 again, as every other folder.
"""

import argparse

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from univigu.pipeline_univigu import UniViGUPipeline

from ..components import load_components, load_transformer
from .spec import FPS, HEIGHT, NUM_FRAMES, WIDTH

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def assemble(
    components_dir: str, transformer_dir: str, out_dir: str, shift: float, transformer_dtype: str = "float32"
) -> UniViGUPipeline:
    """Write a ``UniViGUPipeline`` folder from the components and a trained UniViGU transformer, its weights
    stored as ``transformer_dtype`` (the returned pipeline holds them so).

    A base generator (``WanTransformer3DModel``) is converted with :func:`uni_from_base`: with its text
    stream masked that pipeline's text-to-video is the base's, through the UniViGU sampler."""
    tokenizer, text_encoder, vae = load_components(components_dir)
    transformer = load_transformer(transformer_dir, tokenizer).eval().to(STORAGE_DTYPES[transformer_dtype])
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
    parser.add_argument(
        "--transformer-dtype",
        default="float32",
        choices=sorted(STORAGE_DTYPES),
        help="how the transformer's weights are stored (float16: half the bytes; loaded as float32 on a CPU)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    try:
        assemble(args.components, args.transformer, args.out, args.shift, args.transformer_dtype)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    print(f"wrote the pipeline to {args.out}")


if __name__ == "__main__":
    main()
