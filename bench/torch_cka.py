"""Linear CKA baselines for bench/cka.ts: NumPy and PyTorch on the same float32 data, in the same run.

  python3 bench/torch_cka.py --manifest M.json --rounds 5 --threads 2

M.json: {"pair": [xfile, yfile, n, p], "layers": {"a": [[file, n, p], ...], "b": [...]}} (raw float32, row-major).
Prints one JSON line: median milliseconds per engine and task, and the scores (to compare with glassbox's).
"""
import argparse, json, time
import numpy as np
import torch


def load(f, n, p):
    return np.fromfile(f, dtype=np.float32).reshape(n, p)


def cka_np(x, y):
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def cka_torch(x, y):
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    return float(torch.linalg.norm(y.T @ x) ** 2 / (torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)))


def matrix(lib, a, b):
    """Layer x layer linear CKA; per pair the feature form unless its p x p products outweigh the n x n Gram matrices."""
    c = lambda m: m - m.mean(0, keepdims=True) if lib is np else m - m.mean(0, keepdim=True)
    norm = np.linalg.norm if lib is np else torch.linalg.norm
    a, b = [c(m) for m in a], [c(m) for m in b]
    n = a[0].shape[0]
    grams, covs = {}, {}
    def gram(key, m):
        if key not in grams:
            grams[key] = m @ m.T
        return grams[key]
    def cov(key, m):
        if key not in covs:
            covs[key] = norm(m.T @ m)
        return covs[key]
    out = []
    for i, x in enumerate(a):
        row = []
        for j, y in enumerate(b):
            p, q = x.shape[1], y.shape[1]
            if p * p + q * q + p * q <= 2 * n * n:
                row.append(float(norm(y.T @ x) ** 2 / (cov(('a', i), x) * cov(('b', j), y))))
            else:
                k, l = gram(('a', i), x), gram(('b', j), y)
                row.append(float((k * l).sum() / (norm(k) * norm(l))))
        out.append(row)
    return out


def timed(f, rounds):
    f()  # warm-up
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = f()
        ts.append((time.perf_counter() - t) * 1000)
    return float(np.median(ts)), r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--manifest', required=True)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = json.load(open(args.manifest))
    xf, yf, n, p = m['pair']
    x, y = load(xf, n, p), load(yf, n, p)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    a = [load(*l) for l in m['layers']['a']]
    b = [load(*l) for l in m['layers']['b']]
    ta, tb = [torch.from_numpy(v) for v in a], [torch.from_numpy(v) for v in b]
    res = {}
    with torch.no_grad():
        res['pair_numpy_ms'], res['pair_numpy'] = timed(lambda: cka_np(x, y), args.rounds)
        res['pair_torch_ms'], res['pair_torch'] = timed(lambda: cka_torch(tx, ty), args.rounds)
        res['matrix_numpy_ms'], res['matrix_numpy'] = timed(lambda: matrix(np, a, b), args.rounds)
        res['matrix_torch_ms'], res['matrix_torch'] = timed(lambda: matrix(torch, ta, tb), args.rounds)
    res['torch'] = torch.__version__
    res['numpy'] = np.__version__
    print(json.dumps(res))


if __name__ == '__main__':
    main()
