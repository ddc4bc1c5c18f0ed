#!/usr/bin/python3
"""PyTorch timings of attribution methods on the fixture models: the baseline of bench/attribution.ts.

Usage: /usr/bin/python3 bench/torch_attribution.py MODEL METHOD [--batch B] [--seq T] [--steps N] [--chunk R]
                                                   [--runs R] [--warmup W] [--threads K]

MODEL cnn (attributions w.r.t. the input [B, 1, 28, 28]) or gpt (w.r.t. the token embeddings [B, T, 64]).
METHOD:
  saliency     |d f / d x| for the predicted class: one forward + backward of the batch
  ig           integrated gradients, zero baseline, STEPS Gauss-Legendre points: STEPS x B rows of forward +
               backward, in chunks of CHUNK rows (Captum's internal_batch_size; by default the fastest of a few sizes
               on this machine, so PyTorch runs at its best setting); the weighted sum times (x - b)
  occlusion    4x4 windows at stride 4 replaced by 0 (cnn): 49 occluded copies of every image, forward only, in
               chunks of CHUNK rows; each pixel gets f(x) - f(occluded) of its window
  gradcam      Grad-CAM at relu2 (cnn): one forward + backward with the activation kept, the weighted sum, ReLU and
               bilinear upsampling to 28 x 28
Prints one JSON line: {"engine": "pytorch", "model", "method", "median_ms", "runs_ms", ...}. The same computations
as glassbox's methods, written directly in PyTorch the way Captum runs them (expanded batches, no Python loop per
step), so the comparison is of engines, not of libraries.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent


def fixture_module():
    spec = importlib.util.spec_from_file_location("export_fixtures", REPO / "scripts" / "export_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_hot_seed(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    seed = torch.zeros_like(out)
    rows = torch.arange(out.shape[0])
    if out.dim() == 3:
        seed[rows, -1, target] = 1
    else:
        seed[rows, target] = 1
    return seed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=["cnn", "gpt"])
    p.add_argument("method", choices=["saliency", "ig", "occlusion", "gradcam"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--chunk", default="auto",
                   help="rows per call of ig/occlusion, or 'auto' (default): time 64, 128, 256 and 640 once and use the fastest")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    fx = fixture_module()
    model = fx.make_model(args.model)
    for prm in model.parameters():
        prm.requires_grad_(False)
    x = fx.make_input(args.model, args.batch, args.seq if args.model == "gpt" else None)

    if args.model == "gpt":
        tokens = x
        with torch.no_grad():
            emb = model.tok_emb(tokens)

        def f(e: torch.Tensor) -> torch.Tensor:
            rows = e.shape[0] // tokens.shape[0]
            handle = model.tok_emb.register_forward_hook(lambda _m, _i, _o: e)
            try:
                return model(tokens.repeat(rows, 1))
            finally:
                handle.remove()
        x = emb
    else:
        f = model

    with torch.no_grad():
        out = f(x)
    target = (out[:, -1] if out.dim() == 3 else out).argmax(-1)
    seed = one_hot_seed(out, target)
    n = x.shape[0]

    def saliency():
        xi = x.detach().requires_grad_(True)
        (f(xi) * seed).sum().backward()
        return xi.grad.abs()

    nodes, weights = np.polynomial.legendre.leggauss(args.steps)
    alphas = torch.tensor((nodes + 1) / 2, dtype=x.dtype)
    wts = torch.tensor(weights / 2, dtype=x.dtype)

    def ig():
        total = torch.zeros_like(x)
        per = max(1, args.chunk // n)  # steps per chunk
        for s in range(0, args.steps, per):
            a = alphas[s:s + per]
            k = len(a)
            pts = (a.view(k, 1, *[1] * (x.dim() - 1)) * x.unsqueeze(0)).reshape(k * n, *x.shape[1:])
            pts.requires_grad_(True)
            (f(pts) * seed.repeat(k, *[1] * (seed.dim() - 1))).sum().backward()
            total += (wts[s:s + per].view(k, 1, *[1] * (x.dim() - 1)) * pts.grad.view(k, *x.shape)).sum(0)
        return x * total

    def occlusion():
        win = 4
        cells = [(i, j) for i in range(0, 28, win) for j in range(0, 28, win)]
        with torch.no_grad():
            base = (f(x) * seed).sum(1)
            attr = torch.zeros_like(x)
            per = max(1, args.chunk // n)
            for c in range(0, len(cells), per):
                group = cells[c:c + per]
                xs = x.repeat(len(group), 1, 1, 1)
                for g, (i, j) in enumerate(group):
                    xs[g * n:(g + 1) * n, :, i:i + win, j:j + win] = 0
                scores = (f(xs) * seed.repeat(len(group), 1)).sum(1).view(len(group), n)
                for g, (i, j) in enumerate(group):
                    attr[:, :, i:i + win, j:j + win] += (base - scores[g]).view(n, 1, 1, 1)
        return attr

    acts = {}

    def keep(_m, _i, o):
        o.retain_grad()
        acts["a"] = o

    if args.method == "gradcam":
        model.relu2.register_forward_hook(keep)

    def gradcam():
        xi = x.detach().requires_grad_(True)
        (f(xi) * seed).sum().backward()
        a, g = acts["a"], acts["a"].grad
        cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
        return F.interpolate(cam, size=(28, 28), mode="bilinear", align_corners=False)

    fn = {"saliency": saliency, "ig": ig, "occlusion": occlusion, "gradcam": gradcam}[args.method]
    if args.chunk == "auto" and args.method in ("ig", "occlusion"):
        trials = {}
        for c in (64, 128, 256, 640):
            args.chunk = c
            t0 = time.perf_counter()
            fn()
            trials[c] = time.perf_counter() - t0
        args.chunk = min(trials, key=trials.get)
    else:
        args.chunk = 640 if args.chunk == "auto" else int(args.chunk)
    for _ in range(args.warmup):
        fn()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"engine": "pytorch", "torch": torch.__version__, "model": args.model, "method": args.method,
                      "batch": args.batch, "steps": args.steps, "chunk": args.chunk, "threads": args.threads,
                      "runs_ms": times, "median_ms": statistics.median(times)}))


if __name__ == "__main__":
    main()
