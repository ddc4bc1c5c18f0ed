#!/usr/bin/python3
"""Time PyTorch forward passes of the fixture models, as the baseline for glassbox's engine benchmark.

Usage: /usr/bin/python3 bench/torch_forward.py MODEL BATCH [--seq T] [--runs R] [--warmup W] [--threads K] [--check]

MODEL is one of mlp | cnn | resnet18 | gpt. Prints one JSON line to stdout:
  {"engine":"pytorch","torch":...,"model":...,"batch":...,"threads":...,"runs_ms":[...],"median_ms":...}
(gpt adds "seq"). With --check it instead runs fixtures/torch/<model>.input.npy and prints the max abs difference
to <model>.output.npy, which proves this script times the very weights that were exported to ONNX.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "torch"


def load_fixture_module():
    """Import scripts/export_fixtures.py by path: scripts/ is not a package, and resolving it from this file's own
    location makes the bench independent of the working directory."""
    path = REPO / "scripts" / "export_fixtures.py"
    spec = importlib.util.spec_from_file_location("export_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str], models: tuple[str, ...]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PyTorch forward timing for the glassbox fixture models")
    p.add_argument("model", choices=models)
    p.add_argument("batch", type=int)
    p.add_argument("--seq", type=int, default=32, help="gpt sequence length (default 32, the full context)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2, the project's machines)")
    p.add_argument("--check", action="store_true", help="compare against the stored fixture output instead of timing")
    p.add_argument("--backward", action="store_true",
                   help="time forward + backward of sum(output) w.r.t. the input (gpt: the token embeddings), weights frozen")
    p.add_argument("--hooks", action="store_true",
                   help="keep every submodule's output through forward hooks: PyTorch's way of capturing all sites")
    args = p.parse_args(argv)
    if args.batch < 1 or args.runs < 1 or args.warmup < 0 or args.threads < 1:
        p.error("batch, runs and threads must be >= 1, warmup >= 0")
    if not 1 <= args.seq <= 32:
        p.error("--seq must be in [1, 32], the gpt context length")
    return args


def check(fx, name: str) -> int:
    model = fx.make_model(name)
    x = torch.from_numpy(np.load(FIXTURES / f"{name}.input.npy"))
    expected = np.load(FIXTURES / f"{name}.output.npy")
    with torch.inference_mode():
        got = model(x).numpy()
    max_abs = float(np.max(np.abs(got - expected)))
    # Same weights and input give bit-identical results at the same thread count; a different thread count may
    # reorder float reductions, so allow float32 rounding noise but nothing that a weight mismatch would produce.
    ok = got.shape == expected.shape and np.allclose(got, expected, rtol=1e-5, atol=1e-5)
    print(json.dumps({"engine": "pytorch", "torch": torch.__version__, "model": name, "check": "fixture",
                      "max_abs_diff": max_abs, "ok": bool(ok)}))
    return 0 if ok else 1


def time_backward(model, x, args) -> int:
    """Forward + backward of sum(output) w.r.t. the input only, as glassbox's grad w.r.t. its input: weights are
    frozen so autograd computes no weight gradients. Token ids have no gradient, so for gpt the differentiated input
    is the token-embedding output (glassbox's site tok_emb.gather), made a leaf by a forward hook."""
    for p in model.parameters():
        p.requires_grad_(False)
    leaf = {}
    if args.model == "gpt":
        def make_leaf(_module, _inputs, out):
            out = out.detach().requires_grad_(True)
            leaf["x"] = out
            return out
        model.tok_emb.register_forward_hook(make_leaf)

    def step():
        inp = x if args.model == "gpt" else x.detach().requires_grad_(True)
        out = model(inp)
        out.backward(torch.ones_like(out))

    for _ in range(args.warmup):
        step()
    times_ms = []
    for _ in range(args.runs):
        start = time.perf_counter()
        step()
        times_ms.append((time.perf_counter() - start) * 1e3)
    result = {"engine": "pytorch", "torch": torch.__version__, "model": args.model, "batch": args.batch,
              "backward": True, "threads": torch.get_num_threads(), "runs_ms": [round(t, 4) for t in times_ms],
              "median_ms": round(statistics.median(times_ms), 4)}
    if args.model == "gpt":
        result["seq"] = args.seq
    print(json.dumps(result))
    return 0


def main(argv: list[str]) -> int:
    fx = load_fixture_module()
    args = parse_args(argv, fx.MODEL_NAMES)
    torch.set_num_threads(args.threads)
    if args.check:
        return check(fx, args.model)

    model = fx.make_model(args.model)
    x = fx.make_input(args.model, args.batch, args.seq if args.model == "gpt" else None)

    if args.hooks:
        kept: list = []
        for module in model.modules():
            if module is not model:
                module.register_forward_hook(lambda _m, _inp, out: kept.append(out))

    if args.backward:
        return time_backward(model, x, args)

    times_ms = []
    # inference_mode (a stricter no_grad) skips autograd bookkeeping entirely, PyTorch's fastest eval path.
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x)
        for _ in range(args.runs):
            start = time.perf_counter()
            model(x)
            times_ms.append((time.perf_counter() - start) * 1e3)
            if args.hooks:
                kept.clear()

    result = {"engine": "pytorch", "torch": torch.__version__, "model": args.model, "batch": args.batch,
              "hooks": args.hooks}
    if args.model == "gpt":
        result["seq"] = args.seq
    result.update({"threads": torch.get_num_threads(), "runs_ms": [round(t, 4) for t in times_ms],
                   "median_ms": round(statistics.median(times_ms), 4)})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
