#!/usr/bin/python3
"""Export PyTorch autograd reference gradients for the fixture models, to test glassbox's reverse-mode autodiff
over their ONNX graphs against.

Usage: /usr/bin/python3 scripts/grad_fixtures.py [outdir]      (default: fixtures/torch/grad)

For every model of scripts/export_fixtures.py, on its stored fixture input fixtures/torch/<name>.input.npy:

  * a seed tensor g of the output's shape (standard normal, float32, own seeded generator) -> <name>.seed.npy;
    the scalar differentiated is L = sum(output * g), so dL/d(output) = g;
  * dL/d(input) for the float models (mlp, cnn, resnet18)                                  -> <name>.grad_input.npy;
  * dL/d(initializer) for a chosen set of ONNX initializers  -> <name>.grad.<initializer name, sanitized>.npy;
  * gpt only: dL/d(intermediate tensor) for two named ONNX tensors  -> gpt.grad_act.<tensor name, sanitized>.npy;
  * manifest.json: per model the seed, the input, and per gradient file the exact ONNX name it belongs to, its shape,
    its max abs value, and how far PyTorch's float32 gradient is from its float64 one (a guide to test tolerances).

Gradients are taken with respect to the tensors *as they are in the ONNX file*. Where the exporter stored a PyTorch
parameter unchanged (same name, shape and bits) that is the parameter's gradient. Where it transformed it:
  * gpt's Linear weights are stored pre-transposed as onnx::MatMul_N = W.T, so the gradient is (dL/dW).T;
  * resnet18's BatchNorms are folded into the convolutions (onnx::Conv_N), so the gradients come from re-running
    the ONNX graph itself in PyTorch (a small interpreter for its seven op types) with its initializers as leaf
    tensors. That re-run is checked against the stored output, against the real torchvision model's input gradient,
    and, through the chain rule of the folding, against the real model's conv-weight and BatchNorm-bias gradients.
Every initializer is classified (identity / transpose / bn_fold / unmatched) in the manifest; only matched ones are
emitted.

References are computed in float64 (model.double(), float64 seed and input) and stored as float32: the rounding
(<= 6e-8 relative per element, recorded per file) is far below the float32-vs-float64 spread that a float32 autodiff
has to be tested with, and it halves the size. File names replace every character outside [A-Za-z0-9._-] of the
ONNX name with '_' (onnx::Conv_193 -> onnx__Conv_193); the manifest has the exact names.

Needs torch, torchvision, numpy and onnx (Debian python3-onnx, only to read the exported graphs).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "torch"

# Seeds of the gradient seed tensors g: their own generator, offset from the weight seeds like the inputs are.
GRAD_SEED_OFFSET = 2000
# Fixed intra-op thread count so that reruns on one machine reproduce the float32 numbers exactly.
THREADS = 1

# Which initializers get a stored gradient, named by the PyTorch parameter they come from (for a BN-folded conv,
# "<conv>.weight" selects its folded weight; "*conv-biases*" selects every folded conv bias); the ONNX names are
# looked up from the graph and a name that matches no initializer is an error. None = every matched initializer.
# resnet18: every folded conv bias (tiny, and each one checks backprop down to its layer) but only two conv weights:
# a single 3x3 conv weight gradient in layer4 is 4.7-9.4 MB, and fc.weight's is 2 MB, which the ~3 MB budget of this
# folder has no room for (the Gemm weight gradient is covered by mlp and cnn).
SELECTION: dict[str, list[str] | None] = {
    "mlp": None,
    "cnn": None,
    "resnet18": ["fc.bias", "conv1.weight", "layer4.0.downsample.0.weight", "*conv-biases*"],
    "gpt": [
        "tok_emb.weight", "pos_emb.weight",
        "blocks.0.ln1.weight", "blocks.0.ln1.bias",
        "blocks.0.attn.q.weight", "blocks.0.attn.q.bias",
        "blocks.0.attn.k.weight", "blocks.0.attn.v.weight",
        "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias",
        "blocks.1.mlp.fc.weight", "blocks.1.mlp.fc.bias", "blocks.1.mlp.proj.weight",
        "blocks.1.ln2.weight", "blocks.1.ln2.bias",
        "ln_f.weight", "ln_f.bias",
        "head.weight",
    ],
}
# gpt intermediate tensors (ONNX value names) whose gradients are stored: the embedding sum (the residual stream
# entering block 0; its gradient also equals that of /tok_emb/Gather_output_0) and the first LayerNorm's output.
GPT_ACTIVATIONS = {
    "/Add_output_0": "embed",
    "/blocks.0/ln1/LayerNormalization_output_0": "ln1",
}


def load_fixture_module():
    path = REPO / "scripts" / "export_fixtures.py"
    spec = importlib.util.spec_from_file_location("export_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.strip("/"))


def max_abs(a) -> float:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return float(np.max(np.abs(a))) if a.size else 0.0


# ---------------------------------------------------------------------------------------------------------------
# ONNX side: initializers, their consumers, and how each relates to the PyTorch state dict
# ---------------------------------------------------------------------------------------------------------------

def module_path(node_name: str) -> str:
    """'/layer4/layer4.0/downsample/downsample.0/Conv' -> 'layer4.0.downsample.0'. The exporter's scopes repeat the
    container's name (layer4/layer4.0), so join and drop consecutive repeated segments. Only a hint: every match
    made from it is verified on the values."""
    segments = ".".join(node_name.strip("/").split("/")[:-1]).split(".")
    out: list[str] = []
    for s in segments:
        if not out or out[-1] != s:
            out.append(s)
    return ".".join(out)


def bn_for_conv(conv_name: str) -> str | None:
    if re.search(r"(^|\.)conv\d+$", conv_name):
        return re.sub(r"conv(\d+)$", r"bn\1", conv_name)
    if conv_name.endswith("downsample.0"):
        return conv_name[: -1] + "1"
    return None


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(folded weight, folded bias, per-channel scale) in float64, detached."""
    conv, bn = _Detached(conv), _Detached(bn)
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    w = conv.weight.double() * scale[:, None, None, None]
    b0 = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    b = (b0 - bn.running_mean.double()) * scale + bn.bias.double()
    return w, b, scale


class _Detached:
    """Attribute view of a module whose tensors come back detached."""

    def __init__(self, module: nn.Module) -> None:
        self._m = module

    def __getattr__(self, name: str):
        v = getattr(self._m, name)
        return v.detach() if isinstance(v, torch.Tensor) else v


def classify_initializers(graph: onnx.GraphProto, model: nn.Module) -> dict[str, dict]:
    """For every initializer: which PyTorch parameter it is and how ('identity', 'transpose', 'bn_fold'), or
    'unmatched' / 'buffer'."""
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in inits:
                consumers.setdefault(name, []).append((node, k))
    state = {k: v.detach() for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    out: dict[str, dict] = {}
    for name, arr in inits.items():
        info: dict = {"shape": list(arr.shape), "dtype": str(arr.dtype),
                      "consumers": [f"{n.op_type} {n.name} input {k}" for n, k in consumers.get(name, [])]}
        if name in state and list(state[name].shape) == list(arr.shape) and np.array_equal(state[name].numpy(), arr):
            info["relation"] = "identity" if name in params else "buffer"
            info["torch"] = name
            out[name] = info
            continue
        info["relation"] = "unmatched"
        uses = consumers.get(name, [])
        if len(uses) == 1:
            node, k = uses[0]
            mod_name = module_path(node.name)
            mod = modules.get(mod_name)
            if node.op_type == "MatMul" and k == 1 and isinstance(mod, nn.Linear):
                w = mod.weight.detach().numpy()
                if w.T.shape == arr.shape and np.array_equal(w.T, arr):
                    info.update(relation="transpose", torch=f"{mod_name}.weight")
            elif node.op_type == "Conv" and k in (1, 2) and isinstance(mod, nn.Conv2d):
                bn_name = bn_for_conv(mod_name)
                bn = modules.get(bn_name) if bn_name else None
                if isinstance(bn, nn.BatchNorm2d):
                    w_f, b_f, _ = fold_bn(mod, bn)
                    ref = (w_f if k == 1 else b_f).numpy()
                    if ref.shape == arr.shape:
                        err = float(np.max(np.abs(ref - arr.astype(np.float64))))
                        # float32 rounding of the folded values, nothing more
                        if err <= 1e-6 * max(1.0, max_abs(ref)):
                            info.update(relation="bn_fold", torch=f"{mod_name}.weight" if k == 1 else None,
                                        conv=mod_name, bn=bn_name, input_index=k, fold_max_abs_err=err)
        out[name] = info
    return out


# ---------------------------------------------------------------------------------------------------------------
# A PyTorch re-execution of an ONNX graph (the ops of mlp, cnn and resnet18), initializers as leaf tensors
# ---------------------------------------------------------------------------------------------------------------

def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(pads: list[int]) -> list[int]:
    half = len(pads) // 2
    if list(pads[:half]) != list(pads[half:]):
        raise ValueError(f"asymmetric pads {pads} not supported")
    return list(pads[:half])


def run_onnx_graph(graph: onnx.GraphProto, feeds: dict[str, torch.Tensor], leaves: dict[str, torch.Tensor],
                   keep: tuple[str, ...] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    env: dict[str, torch.Tensor] = {**leaves, **feeds}
    for node in graph.node:
        a = _attrs(node)
        x = [env[i] for i in node.input if i]
        op = node.op_type
        if op == "Conv":
            if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
                raise ValueError(f"{node.name}: only group 1, dilation 1")
            y = F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=a.get("strides", [1, 1]),
                         padding=_sym_pads(a.get("pads", [0, 0, 0, 0])))
        elif op == "Relu":
            y = F.relu(x[0])
        elif op == "MaxPool":
            if a.get("dilations", [1, 1]) != [1, 1] or a.get("storage_order", 0) != 0:
                raise ValueError(f"{node.name}: unsupported MaxPool attributes")
            y = F.max_pool2d(x[0], a["kernel_shape"], stride=a.get("strides", a["kernel_shape"]),
                             padding=_sym_pads(a.get("pads", [0, 0, 0, 0])), ceil_mode=bool(a.get("ceil_mode", 0)))
        elif op == "Add":
            y = x[0] + x[1]
        elif op == "GlobalAveragePool":
            y = x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True)
        elif op == "Flatten":
            axis = a.get("axis", 1)
            y = x[0].reshape(int(np.prod(x[0].shape[:axis])), -1)
        elif op == "Gemm":
            A = x[0].T if a.get("transA", 0) else x[0]
            B = x[1].T if a.get("transB", 0) else x[1]
            y = a.get("alpha", 1.0) * (A @ B)
            if len(x) > 2:
                y = y + a.get("beta", 1.0) * x[2]
        else:
            raise ValueError(f"op {op} ({node.name}) not supported by this interpreter")
        env[node.output[0]] = y
    return env[graph.output[0].name], {k: env[k] for k in keep}


def graph_leaves(graph: onnx.GraphProto, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {i.name: torch.tensor(numpy_helper.to_array(i)).to(dtype).requires_grad_(True) for i in graph.initializer}


def graph_grads(graph, x: torch.Tensor, g: torch.Tensor, dtype: torch.dtype):
    leaves = graph_leaves(graph, dtype)
    xx = x.detach().to(dtype).clone().requires_grad_(True)
    y, _ = run_onnx_graph(graph, {graph.input[0].name: xx}, leaves)
    (y * g.to(dtype)).sum().backward()
    return y.detach(), xx.grad, {k: v.grad for k, v in leaves.items()}


# ---------------------------------------------------------------------------------------------------------------
# PyTorch-model gradients
# ---------------------------------------------------------------------------------------------------------------

def model_grads(fx, name: str, x: torch.Tensor, g: torch.Tensor, dtype: torch.dtype):
    """Output, dL/dx (None for gpt), dL/dparam by PyTorch name, and (gpt) dL/d of the named activations."""
    model = fx.make_model(name).to(dtype)
    acts: dict[str, torch.Tensor] = {}
    if name == "gpt":
        def keep_embed(_m, inputs):
            if inputs[0].requires_grad:  # not under no_grad (finite differences)
                inputs[0].retain_grad()
            acts["embed"] = inputs[0]

        def keep_ln1(_m, _inputs, output):
            if output.requires_grad:
                output.retain_grad()
            acts["ln1"] = output

        model.blocks[0].register_forward_pre_hook(keep_embed)
        model.blocks[0].ln1.register_forward_hook(keep_ln1)
        xx = x
    else:
        xx = x.detach().to(dtype).clone().requires_grad_(True)
    y = model(xx)
    (y * g.to(dtype)).sum().backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    act_grads = {k: v.grad for k, v in acts.items()}
    return model, y.detach(), (None if name == "gpt" else xx.grad), grads, act_grads, acts


# ---------------------------------------------------------------------------------------------------------------

class Writer:
    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.total_bytes = 0

    def save(self, filename: str, ref64: torch.Tensor) -> tuple[np.ndarray, float]:
        arr = ref64.detach().numpy().astype(np.float32)
        np.save(self.outdir / filename, arr)
        self.total_bytes += (self.outdir / filename).stat().st_size
        return arr, float(np.max(np.abs(arr.astype(np.float64) - ref64.detach().numpy())))


def grad_entry(writer: Writer, filename: str, kind: str, onnx_name: str, ref64: torch.Tensor,
               g32: torch.Tensor, **extra) -> dict:
    _, rounding = writer.save(filename, ref64)
    m = max_abs(ref64)
    diff = max_abs(g32.double() - ref64)
    return {"file": filename, "kind": kind, "onnx_name": onnx_name, "shape": list(ref64.shape), "dtype": "float32",
            "max_abs": m, "max_abs_diff_f32_vs_f64": diff, "rel_diff_f32_vs_f64": diff / m if m else 0.0,
            "storage_rounding_max_abs": rounding, **extra}


def fd_check(f, t: torch.Tensor, index: tuple, analytic: float, h: float = 1e-6) -> dict:
    """Central finite difference of the float64 scalar f() in element `index` of the float64 tensor t (in place)."""
    with torch.no_grad():
        orig = t[index].item()
        t[index] = orig + h
        up = f().item()
        t[index] = orig - h
        down = f().item()
        t[index] = orig
    fd = (up - down) / (2 * h)
    return {"index": list(index), "h": h, "finite_difference": fd, "autograd": analytic,
            "abs_err": abs(fd - analytic)}


def process(fx, name: str, writer: Writer) -> dict:
    onnx_path = FIXTURES / f"{name}.onnx"
    graph = onnx.load(str(onnx_path)).graph
    x = torch.from_numpy(np.load(FIXTURES / f"{name}.input.npy"))
    expected = np.load(FIXTURES / f"{name}.output.npy")
    if not torch.equal(x, fx.make_input(name, fx.FIXTURE_BATCH[name])):
        raise SystemExit(f"{name}: stored fixture input differs from make_input; re-export the fixtures first")

    gen = torch.Generator().manual_seed(fx.WEIGHT_SEEDS[name] + GRAD_SEED_OFFSET)
    g = torch.randn(*expected.shape, generator=gen, dtype=torch.float32)
    np.save(writer.outdir / f"{name}.seed.npy", g.numpy())
    writer.total_bytes += (writer.outdir / f"{name}.seed.npy").stat().st_size

    model32 = fx.make_model(name)
    inits = classify_initializers(graph, model32)
    checks: dict = {}
    grads_out: list[dict] = []

    # --- PyTorch model gradients, float32 and float64
    model64, y64, gx64, gp64, ga64, acts64 = model_grads(fx, name, x, g, torch.float64)
    _, y32, gx32, gp32, ga32, _ = model_grads(fx, name, x, g, torch.float32)
    checks["model_output_vs_fixture_max_abs"] = max_abs(y32 - torch.from_numpy(expected))
    checks["model_output_f64_vs_fixture_max_abs"] = max_abs(y64 - torch.from_numpy(expected).double())

    if name == "resnet18":
        # Gradients w.r.t. the ONNX tensors come from re-running the ONNX graph itself.
        oy64, ogx64, og64 = graph_grads(graph, x, g, torch.float64)
        oy32, ogx32, og32 = graph_grads(graph, x, g, torch.float32)
        checks["onnx_rerun_output_f32_vs_fixture_max_abs"] = max_abs(oy32 - torch.from_numpy(expected))
        checks["onnx_rerun_output_f64_vs_fixture_max_abs"] = max_abs(oy64 - torch.from_numpy(expected).double())
        checks["grad_input_onnx_rerun_vs_torch_model_f64_max_abs"] = max_abs(ogx64 - gx64)
        # Chain rule of the folding: dL/dW_conv = dL/dW_folded * scale, dL/d(bn.bias) = dL/db_folded.
        modules = dict(model64.named_modules())
        chain_w, chain_b = 0.0, 0.0
        for iname, info in inits.items():
            if info["relation"] != "bn_fold":
                continue
            conv, bn = modules[info["conv"]], modules[info["bn"]]
            if info["input_index"] == 1:
                _, _, scale = fold_bn(conv, bn)
                err = max_abs(og64[iname] * scale[:, None, None, None] - conv.weight.grad)
                chain_w = max(chain_w, err / max(max_abs(conv.weight.grad), 1e-300))
            else:
                chain_b = max(chain_b, max_abs(og64[iname] - bn.bias.grad) / max(max_abs(bn.bias.grad), 1e-300))
        checks["bn_fold_chain_rule_conv_weight_max_rel_err_all_convs"] = chain_w
        checks["bn_fold_chain_rule_bn_bias_max_rel_err_all_convs"] = chain_b
        checks["bn_fold_initializers_matched"] = sum(1 for i in inits.values() if i["relation"] == "bn_fold")
        src64, src32, gx_ref, gx_32 = og64, og32, ogx64, ogx32
    else:
        src64 = src32 = None
        gx_ref, gx_32 = gx64, gx32

    if name in ("mlp", "cnn"):
        # The same ONNX re-execution as resnet18's must agree with the model's own autograd here, where no
        # transformation happened.
        _, ogx64, og64 = graph_grads(graph, x, g, torch.float64)
        err = max(max_abs(og64[k] - gp64[k]) for k in og64)
        checks["onnx_rerun_vs_torch_model_grads_f64_max_abs"] = max(err, max_abs(ogx64 - gx64))

    # --- dL/d input
    if gx_ref is not None:
        in_name = graph.input[0].name
        grads_out.append(grad_entry(writer, f"{name}.grad_input.npy", "input", in_name, gx_ref, gx_32))

    # --- dL/d initializers
    sel = SELECTION[name]
    chosen: list[str] = []
    for iname, info in inits.items():
        rel, tname = info["relation"], info.get("torch")
        if rel in ("unmatched", "buffer"):
            continue
        if sel is None:
            chosen.append(iname)
        elif rel == "bn_fold":
            if ("*conv-biases*" in sel and info["input_index"] == 2) or f"{info['conv']}.weight" in sel:
                chosen.append(iname)
        elif tname in sel:
            chosen.append(iname)
    if sel is not None:
        found = {inits[c]["torch"] for c in chosen if inits[c].get("torch")}
        missing = [s for s in sel if not s.startswith("*") and s not in found]
        if missing:
            raise SystemExit(f"{name}: no exactly matching ONNX initializer for {missing}")

    for iname in chosen:
        info = inits[iname]
        rel, tname = info["relation"], info.get("torch")
        if rel == "identity":
            ref, f32 = gp64[tname], gp32[tname]
            how = f"PyTorch parameter {tname} (stored unchanged)"
        elif rel == "transpose":
            ref, f32 = gp64[tname].T.contiguous(), gp32[tname].T.contiguous()
            how = f"transpose of the gradient of PyTorch parameter {tname} (ONNX stores {tname}.T)"
        else:  # bn_fold
            ref, f32 = src64[iname], src32[iname]
            part = "weight" if info["input_index"] == 1 else "bias"
            how = (f"folded {part} of {info['conv']} + {info['bn']}; gradient from re-running the ONNX graph in "
                   f"PyTorch with its initializers as leaves")
        grads_out.append(grad_entry(writer, f"{name}.grad.{sanitize(iname)}.npy", "initializer", iname, ref, f32,
                                    torch_relation=rel, torch_name=tname, source=how))

    # --- gpt activations
    if name == "gpt":
        for tensor_name, key in GPT_ACTIVATIONS.items():
            if not any(tensor_name in n.output for n in graph.node):
                raise SystemExit(f"gpt: ONNX graph has no tensor {tensor_name}")
            grads_out.append(grad_entry(writer, f"gpt.grad_act.{sanitize(tensor_name)}.npy", "activation",
                                        tensor_name, ga64[key], ga32[key]))

    # --- sanity checks with closed forms and finite differences (float64)
    gd = g.double()
    if name == "mlp":
        checks["closed_form_fc3_bias_eq_sum_g_max_abs"] = max_abs(gp64["fc3.bias"] - gd.sum(0))
        with torch.no_grad():
            h2 = model64.relu2(model64.fc2(model64.relu1(model64.fc1(x.double()))))
        checks["closed_form_fc3_weight_eq_gT_h2_max_abs"] = max_abs(gp64["fc3.weight"] - gd.T @ h2)
        checks["closed_form_grad_input_max_abs"] = max_abs(gx64 - _mlp_input_grad(model64, x.double(), gd))
    if name in ("mlp", "cnn", "resnet18"):
        xd = x.double().clone()
        if name == "resnet18":
            leaves = {i.name: torch.tensor(numpy_helper.to_array(i)).double() for i in graph.initializer}
            f = lambda: (run_onnx_graph(graph, {"x": xd}, leaves)[0] * gd).sum()  # noqa: E731
        else:
            f = lambda: (model64(xd) * gd).sum()  # noqa: E731
        # resnet18: a perturbed weight moves millions of downstream ReLU/MaxPool inputs, and at h = 1e-6 a few of
        # them cross a kink, which shows as ~1e-4 relative error; h = 1e-7 gets under that (roundoff then ~1e-8).
        hs = (1e-6, 1e-7) if name == "resnet18" else (1e-6,)
        idx = _pick_indices(gx_ref, 3)
        checks["finite_difference_grad_input"] = [fd_check(f, xd, i, gx_ref[i].item(), h) for i in idx for h in hs]
        if name == "resnet18":
            wname = next(k for k, v in inits.items() if v.get("conv") == "conv1" and v["input_index"] == 1)
            w = leaves[wname]
            checks["finite_difference_conv1_folded_weight"] = [
                {"onnx_name": wname, **fd_check(f, w, i, src64[wname][i].item(), h)}
                for i in _pick_indices(src64[wname], 2) for h in hs]
        else:
            wname = "c1.weight" if name == "cnn" else "fc1.weight"
            p = dict(model64.named_parameters())[wname]
            idx = _pick_indices(gp64[wname], 1)[0]
            checks[f"finite_difference_{wname}"] = fd_check(lambda: (model64(x.double()) * gd).sum(), p.data, idx,
                                                            gp64[wname][idx].item())
    if name == "gpt":
        emb_g, ln1_g, emb_x = ga64["embed"], ga64["ln1"], acts64["embed"].detach()
        ln1 = model64.blocks[0].ln1
        xhat = F.layer_norm(emb_x, (emb_x.shape[-1],), eps=ln1.eps)
        checks["ln1_bias_eq_sum_ln1_output_grad_max_abs"] = max_abs(gp64["blocks.0.ln1.bias"] - ln1_g.sum((0, 1)))
        checks["ln1_weight_eq_sum_ln1_output_grad_x_xhat_max_abs"] = max_abs(
            gp64["blocks.0.ln1.weight"] - (ln1_g * xhat).sum((0, 1)))
        checks["pos_emb_eq_sum_embed_grad_max_abs"] = max_abs(
            gp64["pos_emb.weight"][: x.shape[1]] - emb_g.sum(0))
        tok_ref = torch.zeros_like(gp64["tok_emb.weight"]).index_add_(0, x.reshape(-1), emb_g.reshape(-1, 64))
        checks["tok_emb_eq_scatter_add_embed_grad_max_abs"] = max_abs(gp64["tok_emb.weight"] - tok_ref)
        f = lambda: (model64(x) * gd).sum()  # noqa: E731
        params = dict(model64.named_parameters())
        fds = []
        for pname in ("head.weight", "blocks.0.ln1.weight", "blocks.0.attn.q.weight", "tok_emb.weight"):
            idx = _pick_indices(gp64[pname], 1)[0]
            fds.append({"param": pname, **fd_check(f, params[pname].data, idx, gp64[pname][idx].item())})
        checks["finite_difference_params"] = fds

    return {
        "onnx": f"fixtures/torch/{name}.onnx",
        "input_file": f"fixtures/torch/{name}.input.npy",
        "output_file": f"fixtures/torch/{name}.output.npy",
        "input_name": graph.input[0].name,
        "output_name": graph.output[0].name,
        "seed_file": f"{name}.seed.npy",
        "seed": {"generator": "torch.Generator().manual_seed(s); torch.randn(shape, dtype=float32)",
                 "s": fx.WEIGHT_SEEDS[name] + GRAD_SEED_OFFSET, "shape": list(g.shape), "dtype": "float32"},
        "loss": "L = sum(output * seed)",
        "grads": grads_out,
        # How every initializer of the ONNX file relates to the PyTorch model (only matched ones can have a file).
        "initializers": {k: {kk: vv for kk, vv in v.items() if kk not in ("consumers", "dtype")}
                         | {"consumer": ", ".join(v["consumers"])} for k, v in inits.items()},
        "checks": checks,
    }


def _mlp_input_grad(model, x, g):
    """dL/dx for the MLP written out by hand: W1^T (relu1' * W2^T (relu2' * W3^T g))."""
    with torch.no_grad():
        a1 = model.fc1(x)
        a2 = model.fc2(F.relu(a1))
        d2 = (g @ model.fc3.weight) * (a2 > 0)
        d1 = (d2 @ model.fc2.weight) * (a1 > 0)
        return d1 @ model.fc1.weight


def _pick_indices(t: torch.Tensor, k: int) -> list[tuple]:
    """k deterministic elements with a clearly non-zero gradient: the largest, then evenly spread ranks."""
    flat = t.detach().abs().reshape(-1)
    order = torch.argsort(flat, descending=True, stable=True)
    nonzero = int((flat > 0).sum())
    picks = [order[int(i * nonzero / (2 * k))].item() for i in range(k)]
    return [tuple(int(v) for v in np.unravel_index(p, tuple(t.shape))) for p in picks]


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else REPO / "fixtures" / "torch" / "grad"
    outdir.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(THREADS)
    fx = load_fixture_module()
    writer = Writer(outdir)
    models = {}
    for name in fx.MODEL_NAMES:
        models[name] = process(fx, name, writer)
        print(f"{name}: {len(models[name]['grads'])} gradient files", file=sys.stderr)
    manifest = {
        "generator": "scripts/grad_fixtures.py",
        "torch": torch.__version__,
        "threads": THREADS,
        "note": ("References computed with PyTorch autograd in float64 and stored as float32; "
                 "max_abs_diff_f32_vs_f64 is the same gradient computed in float32 against that reference. "
                 "Paths of onnx/input/output files are relative to the repository root, all others to this folder."),
        "models": models,
    }
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {writer.total_bytes} bytes of .npy to {outdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
