#!/usr/bin/python3
"""Export the PyTorch reference fixtures that glassbox's tests and benchmarks run against.

Usage: /usr/bin/python3 scripts/export_fixtures.py [outdir]      (default: fixtures/torch)

For every model this writes <name>.onnx, a fixed input <name>.input.npy and PyTorch's own output for it
<name>.output.npy, plus a manifest.json describing them all.

No weights are stored besides the ONNX files: every model is rebuilt bit-for-bit from its seed by `build(name)`, so
other scripts (bench/torch_forward.py) import this file and get the very model that was exported. Keep module
construction order and seeds stable; changing either changes every weight and invalidates the fixtures.

Only torch, torchvision and numpy are needed (Debian's python3-torch 1.13); the `onnx` package is deliberately not.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

# Highest opset torch 1.13's exporter supports; 17 is also the first with a native LayerNormalization op.
OPSET = 17

MODEL_NAMES = ("mlp", "cnn", "resnet18", "gpt")

# Weights and inputs use separate seeds so that asking for a different input batch never shifts the weights.
WEIGHT_SEEDS = {"mlp": 1, "cnn": 2, "resnet18": 3, "gpt": 4}
INPUT_SEED_OFFSET = 1000

# Batch (and for gpt, sequence length) of the stored fixture input pairs.
FIXTURE_BATCH = {"mlp": 4, "cnn": 4, "resnet18": 2, "gpt": 3}
GPT_FIXTURE_SEQ = 16


class MLP(nn.Module):
    """784 -> 128 -> 64 -> 10 with ReLU; named layers so ONNX nodes read /fc1/Gemm, /relu1/Relu, ..."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


class CNN(nn.Module):
    """The MNIST-style CNN of the design doc: two 3x3 convs, one 2x2 max-pool, one linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.c2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.c1(x))
        x = self.relu2(self.c2(x))
        return self.fc(self.flatten(self.pool(x)))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention written out op by op, so each step (scores, mask, softmax, mix) is its own
    ONNX node that interpretability methods can read or patch, instead of one fused attention op."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        assert d_model % n_head == 0
        self.n_head = n_head
        self.head_dim = d_model // n_head
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.proj = nn.Linear(d_model, d_model)

    def _split_heads(self, t: torch.Tensor, n: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return t.view(n, s, self.n_head, self.head_dim).transpose(1, 2)  # [N, H, T, hd]

    def forward(self, x: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        """future: bool [T, T], True where a query position would attend to a later key."""
        # Sizes come from x.size() (not Python ints) so the tracer records them as shape ops and N, T stay dynamic.
        n, s, d = x.size()
        q = self._split_heads(self.q(x), n, s)
        k = self._split_heads(self.k(x), n, s)
        v = self._split_heads(self.v(x), n, s)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        # A large finite negative rather than -inf: softmax gives the same exact zeros, but methods that scale or
        # interpolate the scores (e.g. integrated gradients, 0 * score) do not turn -inf into NaN.
        scores = scores.masked_fill(future, -1e9)
        weights = torch.softmax(scores, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(n, s, d)
        return self.proj(out)


class FeedForward(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.act = nn.GELU()  # exact erf form (approximate="none"), exported as Erf arithmetic
        self.proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = FeedForward(d_model)

    def forward(self, x: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), future)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A tiny GPT-style decoder (vocab 96, context 32, d_model 64, 2 blocks, 4 heads) for attention and circuit
    methods. Token + learned position embeddings, pre-LN blocks, final LayerNorm, untied LM head."""

    def __init__(self, vocab: int = 96, context: int = 32, d_model: int = 64, n_layer: int = 2, n_head: int = 4) -> None:
        super().__init__()
        self.context = context
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList([Block(d_model, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        # Untied from tok_emb so the ONNX graph has one plain initializer per weight.
        self.head = nn.Linear(d_model, vocab, bias=False)
        # Lower-triangular mask over the full context, sliced to the actual length at run time. A buffer (not a
        # parameter) so it is never trained; it becomes a constant initializer in the ONNX graph. It lives here,
        # shared by all blocks, because per-block copies are identical and the exporter would merge them anyway.
        self.register_buffer("causal_mask", torch.tril(torch.ones(context, context, dtype=torch.bool)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        s = tokens.size(1)
        future = ~self.causal_mask[:s, :s]
        positions = torch.arange(s, device=tokens.device)
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        for block in self.blocks:
            x = block(x, future)
        return self.head(self.ln_f(x))


def _construct(name: str) -> nn.Module:
    if name == "mlp":
        return MLP()
    if name == "cnn":
        return CNN()
    if name == "resnet18":
        return torchvision.models.resnet18(weights=None, num_classes=1000)
    if name == "gpt":
        return GPT()
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


@torch.no_grad()
def _randomize_norms(model: nn.Module) -> None:
    """Give every LayerNorm/BatchNorm random affine parameters (and BatchNorm random running statistics).

    PyTorch initialises them to the identity (weight 1, bias 0, mean 0, var 1), which is unlike any trained model:
    the exporter would merge all those equal tensors into one initializer shared through Identity nodes, and
    folding BatchNorm into the preceding Conv would be a mere rescale that a wrong folding could still pass.
    Values stay near the identity so activations keep their scale through resnet18's depth.
    """
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            module.weight.uniform_(0.8, 1.2)
            module.bias.normal_(0.0, 0.1)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.8, 1.2)


def make_model(name: str) -> nn.Module:
    """The seeded model in eval mode. Seeding right before construction makes the weights depend only on the seed
    and the module definitions, not on whatever ran earlier in the process."""
    torch.manual_seed(WEIGHT_SEEDS[name])
    model = _construct(name)
    _randomize_norms(model)
    return model.eval()


def make_input(name: str, batch: int, seq: int | None = None, seed: int | None = None) -> torch.Tensor:
    """A random input of the given batch (and sequence length, gpt only) from its own generator, so building
    inputs never disturbs the global RNG that weight construction relies on."""
    gen = torch.Generator().manual_seed(WEIGHT_SEEDS[name] + INPUT_SEED_OFFSET if seed is None else seed)
    if name == "mlp":
        return torch.randn(batch, 784, generator=gen)
    if name == "cnn":
        return torch.randn(batch, 1, 28, 28, generator=gen)
    if name == "resnet18":
        return torch.randn(batch, 3, 224, 224, generator=gen)
    if name == "gpt":
        seq = GPT_FIXTURE_SEQ if seq is None else seq
        if not 1 <= seq <= 32:
            raise ValueError(f"gpt sequence length must be in [1, 32], got {seq}")
        return torch.randint(0, 96, (batch, seq), generator=gen, dtype=torch.int64)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The seeded eval-mode model and its fixture input, without exporting anything."""
    return make_model(name), make_input(name, FIXTURE_BATCH[name])


# ONNX input/output names and symbolic dims per model; the symbolic names become dim_param in the graph.
IO_SPEC = {
    "mlp": ("x", ["N", 784], "logits", ["N", 10]),
    "cnn": ("x", ["N", 1, 28, 28], "logits", ["N", 10]),
    "resnet18": ("x", ["N", 3, 224, 224], "logits", ["N", 1000]),
    "gpt": ("tokens", ["N", "T"], "logits", ["N", "T", 96]),
}


def _dynamic_axes(dims: list) -> dict[int, str]:
    return {i: d for i, d in enumerate(dims) if isinstance(d, str)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(name: str, outdir: Path) -> dict:
    model, x = build(name)
    in_name, in_dims, out_name, out_dims = IO_SPEC[name]
    with torch.no_grad():
        y = model(x)

    onnx_path = outdir / f"{name}.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(onnx_path),
        input_names=[in_name],
        output_names=[out_name],
        dynamic_axes={in_name: _dynamic_axes(in_dims), out_name: _dynamic_axes(out_dims)},
        opset_version=OPSET,
        do_constant_folding=True,
        training=torch.onnx.TrainingMode.EVAL,
        export_params=True,
    )

    in_path = outdir / f"{name}.input.npy"
    out_path = outdir / f"{name}.output.npy"
    np.save(in_path, x.numpy())
    np.save(out_path, y.numpy().astype(np.float32))

    return {
        "onnx": onnx_path.name,
        "input_file": in_path.name,
        "output_file": out_path.name,
        "input_name": in_name,
        "input_dims": in_dims,
        "input_shape": list(x.shape),
        "input_dtype": str(x.numpy().dtype),
        "output_name": out_name,
        "output_dims": out_dims,
        "output_shape": list(y.shape),
        "output_dtype": "float32",
        "weight_seed": WEIGHT_SEEDS[name],
        "sha256": {p.name: _sha256(p) for p in (onnx_path, in_path, out_path)},
    }


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else Path("fixtures/torch")
    outdir.mkdir(parents=True, exist_ok=True)
    # Harmless on CPU (none of these models hits a nondeterministic kernel) and turns any future one into an error.
    torch.use_deterministic_algorithms(True)

    models = {}
    for name in MODEL_NAMES:
        models[name] = export(name, outdir)
        print(f"exported {name} -> {outdir / models[name]['onnx']}", file=sys.stderr)

    manifest = {
        "generator": "scripts/export_fixtures.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "opset": OPSET,
        "models": models,
    }
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
