#!/usr/bin/python3
"""Sparse autoencoder training throughput in PyTorch: the baseline of bench/sae.ts.

Usage: /usr/bin/python3 bench/torch_sae.py [--d 512] [--f 2048] [--batch 256] [--steps 50] [--warmup 5]
                                           [--kind relu|topk] [--l1 0.01] [--k 32] [--threads 2] [--seed 1]

The same SAE as glassbox's (src/methods/representations/sae-graph.ts): f = act((x - b_dec) W_enc + b_enc),
x_hat = f W_dec + b_dec; act ReLU (loss: mean over the batch of the summed squared error + l1 * mean L1 of f) or
TopK (ReLU of the k largest pre-activations, loss the squared error only); Adam lr 1e-3; decoder rows renormalised
to unit norm after every step. Activations are 8192 synthetic rows, each a sum of 8 random unit directions of 4096
with positive coefficients, drawn in a seeded permutation. Prints one JSON line: the seconds of `steps` timed steps
after `warmup` untimed ones, and rows per second.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--f", type=int, default=2048)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--kind", choices=["relu", "topk"], default="relu")
    p.add_argument("--l1", type=float, default=0.01)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dirs = torch.nn.functional.normalize(torch.randn(4096, a.d), dim=1)
    n = 8192
    idx = torch.randint(0, 4096, (n, 8))
    coef = 0.5 + torch.rand(n, 8)
    rows = (coef.unsqueeze(-1) * dirs[idx]).sum(1)

    w_dec = torch.nn.functional.normalize(torch.randn(a.f, a.d), dim=1)
    w_enc = w_dec.t().clone().requires_grad_()
    w_dec.requires_grad_()
    b_enc = torch.zeros(a.f, requires_grad=True)
    b_dec = rows[: a.batch].mean(0).clone().requires_grad_()
    opt = torch.optim.Adam([w_enc, b_enc, w_dec, b_dec], lr=1e-3)
    order = torch.randperm(n)

    def step(i: int) -> float:
        start = (i * a.batch) % (n - a.batch + 1)
        x = rows[order[start:start + a.batch]]
        pre = (x - b_dec) @ w_enc + b_enc
        if a.kind == "relu":
            f = torch.relu(pre)
        else:
            top = torch.topk(pre, a.k, dim=-1)
            f = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        x_hat = f @ w_dec + b_dec
        loss = ((x_hat - x) ** 2).sum(1).mean()
        if a.kind == "relu":
            loss = loss + a.l1 * f.sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            w_dec.div_(w_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))
        return loss.item()

    for i in range(a.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(a.warmup, a.warmup + a.steps):
        last = step(i)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows_per_second": a.steps * a.batch / seconds, "final_loss": last}))


if __name__ == "__main__":
    main()
