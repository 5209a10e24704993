#!/usr/bin/env python3
"""PyTorch peer of bench_train: one training step (forward, cross-entropy, backward, AdamW) of the main
job's two classifiers on sequential Fashion-MNIST, float32 on the CPU, same shapes, names and threads.

Both models are written here in plain PyTorch with the architecture of examples/spt_vs_scratch:
  pixels (B, L, 1) -> Linear(1, D) [+ fixed sinusoidal positions for the Transformer]
  -> 2 pre-LN residual blocks -> LayerNorm -> mean over L -> Linear(D, 10).
The Transformer block is torch.nn.TransformerEncoderLayer (norm_first, GELU, FF 2D, no dropout). The S4D
block is LayerNorm -> bidirectional S4D convolution (ZOH-discretized diagonal state, N = 64 complex modes
per direction and channel: one kernel for the forward and one for the backward direction, an FFT
convolution of length 2L, the D skip) -> GELU -> Linear(D, 2D) -> GLU, added to the input.

With --device cuda the peer of bench_cuda's train_step rows: float32, or bf16 under autocast (the FFTs stay
float32, as in longseq's bf16 SSM blocks).

Prints one JSON object: {"torch": version, "threads": n, "results": {name: seconds per step}}.
"""
import argparse
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import add_device_options, check_device, row_name, timed

# Keep in step with bench/bench_train.cpp.
B, L, D, DEPTH, STATE, HEADS, CLASSES = 32, 784, 64, 2, 64, 4, 10


class S4DConv(nn.Module):
    """Bidirectional S4D convolution: K[c, h, l] = 2 Re(sum_n C[c, h, n] (exp(dt A) - 1) / A exp(dt A l))."""

    def __init__(self, d, n):
        super().__init__()
        self.log_dt = nn.Parameter(torch.rand(d) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.log_a_real = nn.Parameter(torch.log(0.5 * torch.ones(2, d, n // 2)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(n // 2).float().expand(2, d, n // 2).clone())
        self.c = nn.Parameter(torch.randn(2, d, n // 2, 2) * 0.5 ** 0.5)
        self.skip = nn.Parameter(torch.randn(d))

    def kernel(self, length):
        dt = torch.exp(self.log_dt)[None, :, None]
        a = -torch.exp(self.log_a_real) + 1j * self.a_imag
        dta = a * dt
        c = torch.view_as_complex(self.c) * (torch.exp(dta) - 1.0) / a
        powers = dta.unsqueeze(-1) * torch.arange(length, device=a.device)
        return 2 * torch.einsum("chn,chnl->chl", c, torch.exp(powers)).real

    def forward(self, u):  # u (B, D, L)
        length = u.shape[-1]
        k = self.kernel(length)
        k = F.pad(k[0], (0, length)) + F.pad(k[1].flip(-1), (length, 0))  # both directions in one kernel of 2L
        kf = torch.fft.rfft(k, n=2 * length)
        uf = torch.fft.rfft(u, n=2 * length)
        y = torch.fft.irfft(uf * kf, n=2 * length)[..., :length]
        return y + u * self.skip[:, None]


class S4DBlock(nn.Module):
    def __init__(self, d, n):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.conv = S4DConv(d, n)
        self.out = nn.Linear(d, 2 * d)

    def forward(self, x):  # (B, L, D)
        y = self.conv(self.norm(x).transpose(1, 2)).transpose(1, 2)
        return x + F.glu(self.out(F.gelu(y)), dim=-1)


def sinusoidal(length, d):
    pos = torch.arange(length).float()[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2).float() / d)
    pe = torch.zeros(length, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class Classifier(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.encoder = nn.Linear(1, D)
        if kind == "transformer":
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(D, HEADS, 2 * D, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True) for _ in range(DEPTH))
            self.register_buffer("pe", sinusoidal(L, D))
        else:
            self.blocks = nn.ModuleList(S4DBlock(D, STATE) for _ in range(DEPTH))
            self.pe = None
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, CLASSES)

    def forward(self, x):
        h = self.encoder(x)
        if self.pe is not None:
            h = h + self.pe
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.norm(h).mean(dim=1))


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
    x = torch.rand(B, L, 1, device=device)
    y = torch.arange(B, device=device) % CLASSES
    results = {}
    for kind in ("s4d", "transformer"):
        name = row_name(a, f"train_step/{kind}/B={B}/L={L}/D={D}")
        if a.filter not in name:
            continue
        model = Classifier(kind).to(device)
        ssm = [p for n, p in model.named_parameters() if ".conv." in n and not n.endswith("skip")]
        rest = [p for n, p in model.named_parameters() if not (".conv." in n and not n.endswith("skip"))]
        groups = [{"params": rest}] + ([{"params": ssm, "lr": 1e-3, "weight_decay": 0.0}] if ssm else [])
        opt = torch.optim.AdamW(groups, lr=5e-3, weight_decay=0.05)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        results[name] = timed(step, a.min_time, sync)
        print(f"{name}: {results[name] * 1e3:.1f} ms", file=sys.stderr)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
