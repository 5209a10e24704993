#!/usr/bin/env python3
"""PyTorch peer of bench_gemm and bench_fft_conv: the same shapes and names, on the CPU, with the same
thread count. Prints one JSON object: {"torch": version, "source": how it was installed, "threads": n,
"results": {name: seconds}}."""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from timing import timed  # noqa: E402

# Keep in step with bench/shapes.hpp.
GEMM_SHAPES = [(16, 1024, 128), (16, 1024, 256), (16, 1024, 512), (50, 1024, 128)]
CONV_SHAPES = [(16, 128, 1024), (16, 256, 1024), (50, 128, 1024), (16, 128, 4096), (16, 128, 16384)]



def fft_conv(u, k):
    """Causal convolution along the last axis via rfft zero-padded to 2L (the S4 reference recipe)."""
    L = u.shape[-1]
    n = 2 * L
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)
    return y[..., :L]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--filter", default="", help="run only names containing this text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {}
    with torch.no_grad():
        for B, L, H in GEMM_SHAPES:
            name = f"gemm/B={B}/L={L}/H={H}"
            if args.filter not in name:
                continue
            x = torch.rand(B * L, H) - 0.5
            w = torch.rand(2 * H, H) - 0.5
            results[name] = timed(lambda: torch.matmul(x, w.t()), args.min_time)
    for B, H, L in CONV_SHAPES:
        u = torch.rand(B, H, L) - 0.5
        k = torch.rand(H, L) - 0.5
        name = f"fft_conv_fwd/B={B}/H={H}/L={L}"
        if args.filter in name:
            with torch.no_grad():
                results[name] = timed(lambda: fft_conv(u, k), args.min_time)
        name = f"fft_conv_bwd/B={B}/H={H}/L={L}"
        if args.filter in name:
            ur = u.clone().requires_grad_(True)
            kr = k.clone().requires_grad_(True)
            y = fft_conv(ur, kr)
            dy = u

            def backward():
                # Only the backward pass: the graph is kept so each call differentiates the same forward.
                torch.autograd.grad(y, (ur, kr), dy, retain_graph=True)

            results[name] = timed(backward, args.min_time)
    # Debian's python3-torch lives under /usr/lib/python3/dist-packages; anything else came from pip (PyPI).
    source = "Debian python3-torch" if "/usr/lib/python3/dist-packages" in torch.__file__ else "PyPI wheel"
    print(json.dumps({"torch": torch.__version__, "source": source, "threads": torch.get_num_threads(),
                      "results": results}))


if __name__ == "__main__":
    main()
