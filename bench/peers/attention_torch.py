#!/usr/bin/env python3
"""PyTorch peer of bench_attention: forward + backward of torch.nn.TransformerEncoderLayer (pre-LN,
GELU, no dropout, batch first; attention through scaled_dot_product_attention), float32 on the CPU,
same shapes, names and thread count. With --device cuda the peer of bench_cuda's encoder-layer rows: float32,
or bf16 under autocast with SDPA held to its flash backend.

Prints one JSON object: {"torch": version, "threads": n, "results": {name: seconds per fwd+bwd}}.
"""
import argparse
import contextlib
import json

import torch

from timing import add_device_options, check_device, row_name, timed

# Keep in step with bench/bench_attention.cpp: (B, L, D, heads, FF).
SHAPES = [(16, 1024, 128, 4, 256), (8, 4096, 128, 4, 256)]



def flash_only(a):
    """bf16 on the GPU: SDPA may use its flash kernels only (an error, not a silent fallback, if it cannot)."""
    if a.device != "cuda" or a.dtype != "bf16":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--filter", default="", help="substring of the benchmark names to run")
    add_device_options(ap)
    a = ap.parse_args()
    device, autocast, sync = check_device(ap, a, torch)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    results = {}
    for B, L, D, H, F in SHAPES:
        name = row_name(a, f"encoder_layer_fwd_bwd/B={B}/L={L}/D={D}")
        if a.filter not in name:
            continue
        layer = torch.nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation="gelu", batch_first=True,
                                                 norm_first=True).to(device)
        x = torch.randn(B, L, D, device=device, requires_grad=True)
        dy = torch.randn(B, L, D, device=device)

        def step():
            layer.zero_grad(set_to_none=True)
            x.grad = None
            with autocast(), flash_only(a):
                y = layer(x)
            y.backward(dy.to(y.dtype))

        results[name] = timed(step, a.min_time, sync)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
