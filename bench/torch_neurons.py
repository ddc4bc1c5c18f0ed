#!/usr/bin/python3
"""The PyTorch twin of glassbox's dataset-example scan (bench/neurons.ts): forward hooks on the fixture CNN keep, for
every channel of the hooked ReLUs, the top-k examples by spatial max and the bottom-k by spatial min (with the peak
position), a histogram of the spatial max over fixed edges, and float64 sums — streaming MNIST in batches.

Usage: /usr/bin/python3 bench/torch_neurons.py --images IDX [--count N] [--sites relu1,relu2] [--k 9] [--batch 256]
       [--threads 2] [--edges FILE] [--digest FILE]

Prints one JSON line: {"engine":"pytorch","torch":...,"images":N,"seconds":...,"images_per_s":...}. The timed part is
the whole pass: uint8 → float32 / 255 per batch, the forward with hooks, and the bookkeeping. With --digest it writes
every channel's top-k and bottom-k indices and histogram counts to FILE, so the bench can compare the two engines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def load_fixture_module():
    """scripts/export_fixtures.py by path (scripts/ is not a package): the same seeded weights the ONNX file holds."""
    spec = importlib.util.spec_from_file_location("export_fixtures", REPO / "scripts" / "export_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_idx_images(path: str) -> torch.Tensor:
    """An IDX3 uint8 file (MNIST's format: big-endian magic 0x803, count, rows, cols) as a uint8 tensor [N, H, W]."""
    raw = Path(path).read_bytes()
    magic, n, h, w = np.frombuffer(raw[:16], dtype=">i4")
    if magic != 0x803:
        raise ValueError(f"{path}: not an IDX3 uint8 file (magic {magic:#x})")
    return torch.from_numpy(np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, h, w).copy())


class Tally:
    """Top-k / bottom-k per channel (value, then the smaller index: a stable sort with the kept entries first),
    histogram counts of the spatial max, and float64 sums."""

    def __init__(self, k: int, edges: torch.Tensor) -> None:
        self.k = k
        self.edges = edges
        self.top = None
        self.bottom = None
        self.counts = None
        self.sum = None
        self.sum_sq = None
        self.start = 0

    def keep(self, kept, values, index, pos, descending: bool):
        if kept is not None:
            values = torch.cat([kept[0], values], dim=1)
            index = torch.cat([kept[1], index], dim=1)
            pos = torch.cat([kept[2], pos], dim=1)
        order = torch.sort(values, dim=1, descending=descending, stable=True).indices[:, : self.k]
        return values.gather(1, order), index.gather(1, order), pos.gather(1, order)

    def add(self, out: torch.Tensor) -> None:
        flat = out.flatten(2)  # [N, C, H·W]
        n, c, _ = flat.shape
        mx, am = flat.max(dim=2)  # [N, C]; ties: the first position
        mn, an = flat.min(dim=2)
        index = torch.arange(self.start, self.start + n).expand(c, n)
        self.start += n
        self.top = self.keep(self.top, mx.t(), index, am.t(), True)
        self.bottom = self.keep(self.bottom, mn.t(), index, an.t(), False)
        wide = mx.t().double()  # [C, N]
        bins = torch.bucketize(wide, self.edges, right=True)  # edges ≤ v: 0 underflow … len(edges) overflow
        nb = len(self.edges) + 1
        flat_bins = (torch.arange(c).unsqueeze(1) * nb + bins).flatten()
        counts = torch.bincount(flat_bins, minlength=c * nb).view(c, nb)
        self.counts = counts if self.counts is None else self.counts + counts
        s, s2 = wide.sum(1), (wide * wide).sum(1)
        self.sum = s if self.sum is None else self.sum + s
        self.sum_sq = s2 if self.sum_sq is None else self.sum_sq + s2


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="PyTorch dataset-example scan over MNIST with forward hooks")
    p.add_argument("--images", required=True, help="MNIST images in IDX3 format")
    p.add_argument("--count", type=int, default=0, help="scan the first COUNT images (default all)")
    p.add_argument("--sites", default="relu1,relu2", help="modules of the CNN to hook")
    p.add_argument("--k", type=int, default=9)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--edges", help="JSON list of histogram edges (default: glassbox's signed log2 scale)")
    p.add_argument("--digest", help="write top/bottom indices and histogram counts here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    fx = load_fixture_module()
    model = fx.make_model("cnn")
    images = read_idx_images(args.images)
    if args.count:
        images = images[: args.count]
    if args.edges:
        edges = json.loads(Path(args.edges).read_text())
    else:
        pos = [2.0 ** (-10 + j / 4) for j in range(81)]
        edges = [-e for e in reversed(pos)] + [0.0] + pos
    edges = torch.tensor(edges, dtype=torch.float64)
    tallies = {}
    for name in args.sites.split(","):
        tallies[name] = Tally(args.k, edges)
        getattr(model, name).register_forward_hook(lambda _m, _inp, out, t=tallies[name]: t.add(out))

    start = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(images), args.batch):
            x = images[s : s + args.batch].unsqueeze(1).float() / 255  # [B, 1, 28, 28], torchvision's ToTensor
            model(x)
    seconds = time.perf_counter() - start

    if args.digest:
        digest = {name: {"top": t.top[1].tolist(), "bottom": t.bottom[1].tolist(), "topValues": t.top[0].tolist(),
                         "counts": t.counts.tolist()} for name, t in tallies.items()}
        Path(args.digest).write_text(json.dumps(digest))
    print(json.dumps({"engine": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "images": len(images), "batch": args.batch, "k": args.k, "sites": args.sites.split(","),
                      "seconds": round(seconds, 4), "images_per_s": round(len(images) / seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
