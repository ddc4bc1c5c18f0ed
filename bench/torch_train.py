#!/usr/bin/python3
"""One training epoch of glassbox's mnist-cnn model in PyTorch: the baseline of bench/train.ts.

Usage: /usr/bin/python3 bench/torch_train.py DATA_DIR [--batch 64] [--lr 0.003] [--threads 2] [--seed 1]

DATA_DIR holds train_x.npy (uint8 [N, 28, 28]), train_y.npy (int64 [N]), test_x.npy and test_y.npy, written by
bench/train.ts from the same MNIST files glassbox trains on. The model is the one glassbox's builder emits
(cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10 })): Conv 3x3 pad 1 -> ReLU -> MaxPool 2, twice, then
Linear(32*7*7, 10); Adam, cross-entropy, batches drawn from a seeded permutation, each batch scaled from uint8 to
[0, 1] as glassbox's dataset does. Prints one JSON line: the epoch's seconds (training only), its mean train loss
and accuracy, and the test accuracy after it (not timed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x = torch.from_numpy(np.load(args.data / "train_x.npy"))
    y = torch.from_numpy(np.load(args.data / "train_y.npy"))
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(y))
    total_loss, correct = 0.0, 0
    start = time.perf_counter()
    for i in range(0, len(y), args.batch):
        idx = order[i:i + args.batch]
        xb = x[idx].unsqueeze(1).float().div_(255)
        yb = y[idx]
        opt.zero_grad(set_to_none=True)
        logits = net(xb)
        loss = loss_fn(logits, yb)
        loss.backward()
        opt.step()
        total_loss += loss.item() * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
    seconds = time.perf_counter() - start
    with torch.no_grad():
        tx = torch.from_numpy(np.load(args.data / "test_x.npy")).unsqueeze(1).float().div_(255)
        ty = torch.from_numpy(np.load(args.data / "test_y.npy"))
        test_acc = float((torch.cat([net(tx[i:i + 1000]).argmax(1) for i in range(0, len(ty), 1000)]) == ty).float().mean())
    print(json.dumps({
        "engine": "pytorch", "torch": torch.__version__, "threads": args.threads, "batch": args.batch,
        "examples": len(y), "seconds": seconds, "train_loss": total_loss / len(y), "train_accuracy": correct / len(y),
        "test_accuracy": test_acc,
    }))


if __name__ == "__main__":
    main()
