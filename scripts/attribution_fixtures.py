#!/usr/bin/python3
"""Reference attributions from PyTorch autograd for the fixture CNN and transformer, to test glassbox's gradient
attribution methods against the same computation in PyTorch.

Usage: /usr/bin/python3 scripts/attribution_fixtures.py [outdir]      (default: fixtures/torch/attribution)

On the stored fixture inputs (fixtures/torch/<model>.input.npy), with the target each example's predicted class
(the gpt's at the last position), computed in float64 and stored as float32:

  cnn (attributions w.r.t. the input x [4, 1, 28, 28]):
    gradient           d f / d x
    gradient_x_input   x * d f / d x
    ig                 integrated gradients from a zero baseline, trapezoid rule over IG_STEPS points:
                       (x - b) * sum_k w_k d f / d x (b + a_k (x - b)), a_k = k / (n - 1), end weights halved
    guided_backprop    Springenberg et al. 2015: every ReLU passes back max(g, 0) where its input was > 0
    deconvnet          Zeiler & Fergus 2014: every ReLU passes back max(g, 0)
    gradcam            Selvaraju et al. 2017 at relu2 (glassbox site relu2.relu), before upsampling [4, 28, 28]:
                       relu(sum_k mean_hw(d f / d A_k) A_k)
    layer_conductance  Dhamdhere et al. 2018 at relu1 (site relu1.relu) [4, 32, 28, 28], zero baseline, COND_STEPS
                       intervals of the input path x_k = (k / m) x, the gradient at each interval's midpoint:
                       sum_k d f / d h (x_{k+1/2}) * (h(x_{k+1}) - h(x_k))
    neuron_gradient    d h_u / d x for unit NEURON (flat index into one example's value) of relu2
  gpt (attributions w.r.t. the token embeddings, glassbox site tok_emb.gather [2, 16, 64]):
    gradient, gradient_x_input, ig (zero embedding baseline) as above

manifest.json records the targets and settings. Needs torch and numpy (Debian python3-torch).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "torch"
IG_STEPS = 16
COND_STEPS = 16
NEURON = 5000


def fixture_module():
    spec = importlib.util.spec_from_file_location("export_fixtures", REPO / "scripts" / "export_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trapezoid(n: int) -> tuple[np.ndarray, np.ndarray]:
    alphas = np.arange(n) / (n - 1)
    weights = np.full(n, 1.0 / (n - 1))
    weights[0] = weights[-1] = 0.5 / (n - 1)
    return alphas, weights


def seed_for(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """One-hot weights of the target class (at the last position for [N, T, C])."""
    seed = torch.zeros_like(out)
    rows = torch.arange(out.shape[0])
    if out.dim() == 3:
        seed[rows, -1, targets] = 1
    else:
        seed[rows, targets] = 1
    return seed


def grad_of(f, x: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    out = f(x)
    (out * seed).sum().backward()
    return x.grad.detach()


def integrated(f, x: torch.Tensor, seed: torch.Tensor, n: int) -> torch.Tensor:
    alphas, weights = trapezoid(n)
    total = torch.zeros_like(x)
    for a, w in zip(alphas, weights):
        total += w * grad_of(f, a * x, seed)
    return x * total


class ReluRule(torch.autograd.Function):
    """ReLU whose backward is replaced: guided (positive gradient where the input was positive) or deconvnet."""

    @staticmethod
    def forward(ctx, x, guided):
        ctx.save_for_backward(x)
        ctx.guided = guided
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g = g.clamp(min=0)
        return (g * (x > 0) if ctx.guided else g), None


def cnn_with_rule(model: nn.Module, guided: bool):
    def f(x):
        h = ReluRule.apply(model.c1(x), guided)
        h = ReluRule.apply(model.c2(h), guided)
        return model.fc(model.flatten(model.pool(h)))
    return f


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else FIXTURES / "attribution"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    fx = fixture_module()
    manifest: dict = {"ig_steps": IG_STEPS, "ig_method": "riemann-trapezoid", "baseline": "zero", "models": {}}
    save = lambda name, t: np.save(out_dir / f"{name}.npy", t.detach().numpy().astype(np.float32))

    cnn = fx.make_model("cnn").double()
    for p in cnn.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(FIXTURES / "cnn.input.npy")).double()
    with torch.no_grad():
        logits = cnn(x)
    targets = logits.argmax(1)
    seed = seed_for(logits, targets)
    g = grad_of(cnn, x, seed)
    save("cnn.gradient", g)
    save("cnn.gradient_x_input", x * g)
    save("cnn.ig", integrated(cnn, x, seed, IG_STEPS))
    save("cnn.guided_backprop", grad_of(cnn_with_rule(cnn, True), x, seed))
    save("cnn.deconvnet", grad_of(cnn_with_rule(cnn, False), x, seed))
    acts = {}
    cnn.relu2.register_forward_hook(lambda _m, _i, out: acts.__setitem__("a", out) or (out.retain_grad() if out.requires_grad else None))
    out = cnn(x.detach().requires_grad_(True))
    (out * seed).sum().backward()
    a, da = acts["a"], acts["a"].grad
    cam = torch.relu((da.mean(dim=(2, 3), keepdim=True) * a).sum(1))
    save("cnn.gradcam", cam)
    h1 = {}

    def keep1(_m, _i, out):
        if out.requires_grad:
            out.retain_grad()
        h1["h"] = out

    handle = cnn.relu1.register_forward_hook(keep1)
    with torch.no_grad():
        ends = [None] * (COND_STEPS + 1)
        for k in range(COND_STEPS + 1):
            cnn(k / COND_STEPS * x)
            ends[k] = h1["h"].detach()
    cond = torch.zeros_like(ends[0])
    for k in range(COND_STEPS):
        out = cnn(((k + 0.5) / COND_STEPS * x).detach().requires_grad_(True))
        (out * seed).sum().backward()
        cond += h1["h"].grad * (ends[k + 1] - ends[k])
    handle.remove()
    save("cnn.layer_conductance", cond)
    xi = x.detach().requires_grad_(True)
    cnn(xi)
    acts["a"].reshape(acts["a"].shape[0], -1)[:, NEURON].sum().backward()
    save("cnn.neuron_gradient", xi.grad)
    manifest["models"]["cnn"] = {"wrt": "x", "targets": targets.tolist(), "gradcam_site": "relu2.relu",
                                 "conductance": {"site": "relu1.relu", "steps": COND_STEPS},
                                 "neuron": {"site": "relu2.relu", "index": NEURON}}

    gpt = fx.make_model("gpt").double()
    for p in gpt.parameters():
        p.requires_grad_(False)
    tokens = torch.from_numpy(np.load(FIXTURES / "gpt.input.npy"))
    with torch.no_grad():
        emb = gpt.tok_emb(tokens)
        logits = gpt(tokens)
    targets = logits[:, -1].argmax(1)
    seed = seed_for(logits, targets)

    def from_embedding(e):
        handle = gpt.tok_emb.register_forward_hook(lambda _m, _i, _o: e)
        try:
            return gpt(tokens)
        finally:
            handle.remove()

    g = grad_of(from_embedding, emb, seed)
    save("gpt.gradient", g)
    save("gpt.gradient_x_input", emb * g)
    save("gpt.ig", integrated(from_embedding, emb, seed, IG_STEPS))
    manifest["models"]["gpt"] = {"wrt": "tok_emb.gather", "targets": targets.tolist()}

    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
