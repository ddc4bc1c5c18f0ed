"""Softmax probe training in PyTorch on the features bench/probe.ts writes (float32 rows x features, int32 labels):
standardise, then nn.Linear trained by Adam on cross-entropy in shuffled minibatches. Prints one JSON line per round
with the training seconds and the final training accuracy."""
import argparse
import json
import time

import numpy as np
import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--features', required=True)
    p.add_argument('--labels', required=True)
    p.add_argument('--rows', type=int, required=True)
    p.add_argument('--dim', type=int, required=True)
    p.add_argument('--classes', type=int, required=True)
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--batch', type=int, default=256)
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    x = torch.from_numpy(np.fromfile(a.features, dtype=np.float32).reshape(a.rows, a.dim))
    y = torch.from_numpy(np.fromfile(a.labels, dtype=np.int32).astype(np.int64))
    for r in range(a.rounds):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
        xs = (x - mean) / std
        lin = torch.nn.Linear(a.dim, a.classes)
        opt = torch.optim.Adam(lin.parameters(), lr=a.lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(a.epochs):
            order = torch.randperm(a.rows)
            for s in range(0, a.rows, a.batch):
                ix = order[s:s + a.batch]
                opt.zero_grad()
                loss_fn(lin(xs[ix]), y[ix]).backward()
                opt.step()
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            acc = (lin(xs).argmax(1) == y).float().mean().item()
        print(json.dumps({'round': r, 'seconds': seconds, 'trainAccuracy': acc}), flush=True)


if __name__ == '__main__':
    main()
