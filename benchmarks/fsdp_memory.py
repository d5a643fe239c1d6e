"""Per-GPU memory for weights + gradients + AdamW state of the full UniViGU model under FSDP2 full sharding.

The model is ``UniViGUTransformer()`` with its defaults (Wan2.1-T2V-1.3B: 30 blocks with FFN_t, hidden 1536,
FFN 8960, umT5 text dim 4096; the 256,384-token vocabulary's embedding and text head), built on the ``meta``
device, so every parameter is counted from its real shape and nothing is allocated.

What ``accelerate launch --config_file training/configs/fsdp.yaml -m training.train ... --mixed_precision=bf16``
holds (training/distributed.py: accelerate's ``fsdp2_prepare_model``, one unit per ``UniViGUBlock`` plus the
root for everything else):

- FSDP2 shards every parameter along dim 0 into ``ceil(rows / gpus)``-row pieces (padded: every GPU allocates
  that size); with mixed precision accelerate keeps the sharded weights in fp32 (``MixedPrecisionPolicy``:
  bf16 compute copies, bf16 gradient reduce-scatter, ``output_dtype`` bf16), so the sharded gradients are fp32
  and AdamW's two moments are fp32: 4 + 4 + 8 bytes per sharded parameter (plus one scalar ``step`` per tensor);
- transient, not sharded: the all-gathered compute weights of the root unit (the root is not resharded between
  forward and backward) and of two blocks (the one running and the one prefetched), and one unit's unsharded
  gradients before its reduce-scatter. Activations, the CUDA context and allocator slack come on top.

    python benchmarks/fsdp_memory.py [--gpus 8] [--mixed-precision bf16|no]
"""

import argparse
import math

import torch

from univigu.models import UniViGUTransformer

GIB = 2**30


def _shard_numel(param: torch.Tensor, gpus: int) -> int:
    if param.ndim == 0:
        return 1
    return math.ceil(param.shape[0] / gpus) * math.prod(param.shape[1:])


def memory(gpus: int = 8, mixed_precision: str = "bf16", **config) -> dict:
    """Bytes per GPU (and the parameter counts they come from) for ``UniViGUTransformer(**config)``."""
    with torch.device("meta"):
        model = UniViGUTransformer(**config)
    params = dict(model.named_parameters())
    blocks = [n for n in params if n.startswith("blocks.")]
    block_numel = sum(p.numel() for n, p in params.items() if n.startswith("blocks.0."))
    root_numel = sum(p.numel() for n, p in params.items() if not n.startswith("blocks."))
    total = sum(p.numel() for p in params.values())
    shard = sum(_shard_numel(p, gpus) for p in params.values())
    compute_bytes = 2 if mixed_precision == "bf16" else 4  # all-gathered weights and unsharded gradients
    rows = {
        "weights (fp32, sharded)": 4 * shard,
        "gradients (fp32, sharded)": 4 * shard,
        "AdamW exp_avg + exp_avg_sq (fp32, sharded)": 8 * shard,
    }
    persistent = sum(rows.values())
    transient = {
        "all-gathered root weights (kept from forward to backward)": compute_bytes * root_numel,
        "all-gathered weights of 2 blocks (running + prefetched)": compute_bytes * 2 * block_numel,
        "unsharded gradients of the largest unit (before reduce-scatter)": compute_bytes * max(root_numel, block_numel),
    }
    return {
        "gpus": gpus,
        "mixed_precision": mixed_precision,
        "parameters": total,
        "parameters_per_block": block_numel,
        "blocks": model.config.num_layers,
        "parameters_outside_blocks": root_numel,
        "parameters_per_gpu": shard,
        "tensors": len(params),
        "block_tensors": len(blocks),
        "persistent": rows,
        "persistent_total": persistent,
        "transient": transient,
        "peak_without_activations": persistent + sum(transient.values()),
    }


def table(report: dict) -> str:
    g = report["gpus"]
    lines = [
        f"UniViGUTransformer() defaults: {report['parameters']:,} parameters ({report['blocks']} blocks x "
        f"{report['parameters_per_block']:,} + {report['parameters_outside_blocks']:,} outside the blocks); "
        f"FSDP2 full sharding over {g} GPUs: {report['parameters_per_gpu']:,} per GPU; "
        f"--mixed_precision={report['mixed_precision']}",
        "",
        "| per GPU | GiB |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {b / GIB:.2f} |" for name, b in report["persistent"].items()]
    lines.append(f"| **weights + gradients + optimizer state** | **{report['persistent_total'] / GIB:.2f}** |")
    lines += [f"| + transient: {name} | {b / GIB:.2f} |" for name, b in report["transient"].items()]
    lines.append(f"| peak before activations | {report['peak_without_activations'] / GIB:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--mixed-precision", choices=("bf16", "no"), default="bf16")
    args = parser.parse_args(argv)
    if args.gpus < 1:
        parser.error("--gpus must be at least 1")
    print(table(memory(args.gpus, args.mixed_precision)))


if __name__ == "__main__":
    main()
