#!/usr/bin/env python3
"""PyTorch peer of bench_ssm: forward + backward of the reference S4D block (models/s4/s4d.py) and S4 block
(models/s4/s4.py, S4Block with the DPLR kernel), float32 on the CPU, same shapes, names and thread count.

The reference is imported from a checkout of https://github.com/state-spaces/s4 given with --reference
(measured at commit e757cef57d89e448c413de7325ed5601aceaac13); nothing of it is copied here. Its standalone
s4.py imports pytorch_lightning only for rank_zero_only, and src/utils pulls in hydra for a logger, so
both are replaced by stubs. Without pykeops or the reference's CUDA extension it uses its naive (pure
PyTorch) Cauchy and Vandermonde kernels, which is the CPU configuration. With --device cuda the peer of
bench_cuda's s4d / s4 rows (float32, or bf16 under autocast), with whichever kernels the reference finds.

Prints one JSON object: {"torch": version, "threads": n, "results": {name: seconds per fwd+bwd}}.
"""
import argparse
import json
import logging
import os
import sys
import types

import torch

from timing import add_device_options, check_device, row_name, timed

# Keep in step with bench/bench_ssm.cpp: (B, H, N, L).
SHAPES = [(16, 128, 64, 1024), (8, 128, 64, 4096)]


def import_reference(path):
    sys.path.insert(0, os.path.abspath(path))
    pl = types.ModuleType("pytorch_lightning")
    plu = types.ModuleType("pytorch_lightning.utilities")
    plu.rank_zero_only = lambda f: f
    pl.utilities = plu
    sys.modules.setdefault("pytorch_lightning", pl)
    sys.modules.setdefault("pytorch_lightning.utilities", plu)
    import src  # noqa: F401  (the reference's package root)

    utils = types.ModuleType("src.utils")
    utils.__path__ = []
    train = types.ModuleType("src.utils.train")
    train.get_logger = lambda name=None: logging.getLogger(name)
    utils.train = train
    src.utils = utils
    sys.modules["src.utils"] = utils
    sys.modules["src.utils.train"] = train
    logging.getLogger().setLevel(logging.ERROR)
    from models.s4.s4d import S4D
    from models.s4.s4 import S4Block
    logging.getLogger().setLevel(logging.ERROR)
    return S4D, S4Block



def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="checkout of state-spaces/s4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--filter", default="", help="substring of the benchmark names to run")
    add_device_options(ap)
    args = ap.parse_args()
    device, autocast, sync = check_device(ap, args, torch)
    torch.set_num_threads(args.threads)
    S4D, S4Block = import_reference(args.reference)
    torch.manual_seed(0)

    results = {}
    for B, H, N, L in SHAPES:
        layers = {
            "s4d": lambda: S4D(H, d_state=N, transposed=True),
            "s4": lambda: S4Block(H, d_state=N, l_max=L, mode="dplr", transposed=True, verbose=False),
        }
        for layer, make in layers.items():
            name = row_name(args, f"{layer}_fwd_bwd/B={B}/H={H}/N={N}/L={L}")
            if args.filter not in name:
                continue
            m = make().to(device)
            u = torch.randn(B, H, L, device=device, requires_grad=True)
            dy = torch.randn(B, H, L, device=device)

            def step():
                with autocast():
                    y = m(u)[0]
                y.backward(dy.to(y.dtype))

            results[name] = timed(step, args.min_time, sync)
            print(f"{name}: {results[name] * 1e3:.1f} ms", file=sys.stderr)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
