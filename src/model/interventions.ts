/**
 * Interventions are plain data; `compileInterventions` turns a list of them into a graph variant (ops interposed
 * between a site and its readers) plus the tensors to feed it. Values (masks, vectors, replacements) are fed at
 * run time, so one compiled session serves every value of the same intervention structure.
 */
import type { Graph } from '../onnx/graph.js';
import { attr, makeNode, makeValueInfo, type NodeProto, type TensorProto } from '../onnx/proto.js';
import { addInputs, freshName, interpose } from '../onnx/rewrite.js';
import { ONNX_DTYPE, tensorToProto } from '../onnx/tensor-proto.js';
import { Tensor, type DType } from '../runtime/tensor.js';
import type { Site } from './sites.js';
import { firstNaN } from './validate.js';

interface Common {
  /** Site alias or raw value name. */
  readonly site: string;
  /** The axis whose entries are units (default: 1 for rank 2, 4 and 5; the last axis for rank 3, e.g. [batch, tokens, d]). */
  readonly axis?: number;
}

interface OnUnits extends Common {
  /** Only these units (indices along `axis`) are changed; default: all. */
  readonly units?: readonly number[];
}

/** Replace with zeros. */
export interface Zero extends OnUnits { readonly kind: 'zero' }
/** Replace with the mean over the batch, or with a given mean (e.g. over a dataset) of the site's shape without the batch axis. */
export interface Mean extends OnUnits { readonly kind: 'mean'; readonly value?: Tensor }
/** Replace with a tensor broadcastable to the site's shape. */
export interface SetTo extends OnUnits { readonly kind: 'set'; readonly value: Tensor }
/** Add a vector along the unit axis (steering), or any tensor broadcastable to the site, times `scale` (default 1). */
export interface AddVector extends Common { readonly kind: 'add'; readonly value: Tensor; readonly scale?: number }
/** Multiply by a number, or by one factor per unit. */
export interface Scale extends Common { readonly kind: 'scale'; readonly factor: number | Tensor }
/** Keep only the listed units, zero the rest. */
export interface Mask extends Common { readonly kind: 'mask'; readonly keep: readonly number[] }
/** Take the value from the run of other inputs (activation patching). */
export interface Patch extends OnUnits { readonly kind: 'patch'; readonly from: Readonly<Record<string, Tensor>> }

export type Intervention = Zero | Mean | SetTo | AddVector | Scale | Mask | Patch;
export type InterventionKind = Intervention['kind'];

/** One intervention ready to compile: its site, its structure, and the tensors fed to its graph inputs. */
export interface Resolved {
  readonly site: Site;
  readonly kind: 'where' | 'add' | 'mul' | 'batchMean';
  /** Which units are replaced ('where', 'batchMean'); absent for 'add' and 'mul', which act on every unit. */
  readonly mask?: Tensor<'bool'>;
  readonly operand?: Tensor;
}

/** The unit axis of a site of rank `rank` when none is given. */
export function defaultUnitAxis(rank: number): number {
  return rank === 3 ? 2 : rank <= 1 ? 0 : 1;
}

export interface SiteLayout {
  readonly dtype: DType;
  /** Concrete shape for the batch at hand (axis 0 the batch where the site has one). */
  readonly shape: readonly number[];
}

function broadcastable(from: readonly number[], to: readonly number[]): boolean {
  if (from.length > to.length) return false;
  const off = to.length - from.length;
  return from.every((d, i) => d === 1 || d === to[off + i]);
}

/** Builds the [1, .., n, .., 1] shape that puts a per-unit vector on `axis`. */
function unitShape(shape: readonly number[], axis: number): number[] {
  return shape.map((d, i) => (i === axis ? d : 1));
}

function checkedAxis(iv: Intervention, shape: readonly number[]): number {
  const rank = shape.length;
  const a = iv.axis ?? defaultUnitAxis(rank);
  const axis = a < 0 ? a + rank : a;
  if (axis < 0 || axis >= Math.max(rank, 1)) throw new Error(`${iv.kind} on '${iv.site}': axis ${a} is out of range for shape [${shape.join(', ')}]`);
  return axis;
}

function unitMask(iv: Intervention, shape: readonly number[], units: readonly number[] | undefined): Tensor<'bool'> {
  if (shape.length === 0) return Tensor.bool([1], []);
  const axis = checkedAxis(iv, shape);
  const n = shape[axis];
  const mshape = unitShape(shape, axis);
  if (!units) return Tensor.bool(new Array<number>(n).fill(1), mshape);
  const m = new Uint8Array(n);
  for (const u of units) {
    if (!Number.isInteger(u) || u < 0 || u >= n) {
      throw new Error(`${iv.kind} on '${iv.site}': unit ${u} is out of range; axis ${axis} of shape [${shape.join(', ')}] has ${n} units`);
    }
    m[u] = 1;
  }
  return new Tensor('bool', m, mshape);
}

function checkTensor(iv: Intervention, what: string, t: Tensor, layout: SiteLayout): void {
  if (t.dtype !== layout.dtype) throw new Error(`${iv.kind} on '${iv.site}': ${what} is ${t.dtype} but the site holds ${layout.dtype}`);
  if (!broadcastable(t.shape, layout.shape)) {
    throw new Error(`${iv.kind} on '${iv.site}': ${what} of shape [${t.shape.join(', ')}] does not broadcast to the site's shape [${layout.shape.join(', ')}]`);
  }
  if (t.dtype === 'float32' || t.dtype === 'float64') {
    const i = firstNaN(t.data as Float32Array);
    if (i >= 0) throw new Error(`${iv.kind} on '${iv.site}': ${what} holds NaN at index ${i}`);
  }
}

/** A per-unit vector on the unit axis, or a tensor used as given. */
function perUnit(iv: Intervention, what: string, t: Tensor, layout: SiteLayout): Tensor {
  const axis = checkedAxis(iv, layout.shape);
  const asVector = t.rank === 1 && layout.shape.length > 1 && t.shape[0] === layout.shape[axis] && axis !== layout.shape.length - 1;
  const shaped = asVector ? t.reshape(unitShape(layout.shape, axis)) : t;
  checkTensor(iv, what, shaped, layout);
  return shaped;
}

function scalarLike(dtype: DType, v: number): Tensor {
  const t = Tensor.zeros(dtype, []);
  (t.data as unknown as { [i: number]: number | bigint })[0] = dtype === 'int64' || dtype === 'uint64' ? BigInt(v) : v;
  return t;
}

/**
 * Checks an intervention against its site and turns it into one of four graph forms. `patched` holds the source
 * run's value of the site for a 'patch'.
 */
export function resolveIntervention(iv: Intervention, site: Site, layout: SiteLayout, patched?: Tensor): Resolved {
  const { shape, dtype } = layout;
  switch (iv.kind) {
    case 'zero':
      return { site, kind: 'where', mask: unitMask(iv, shape, iv.units), operand: scalarLike(dtype, 0) };
    case 'mean':
      if (!iv.value) {
        if (shape.length === 0) throw new Error(`mean on '${iv.site}': a scalar site has no batch to average over; give a mean value`);
        return { site, kind: 'batchMean', mask: unitMask(iv, shape, iv.units) };
      }
      checkTensor(iv, 'the mean', iv.value, layout);
      return { site, kind: 'where', mask: unitMask(iv, shape, iv.units), operand: iv.value };
    case 'set':
      checkTensor(iv, 'the value', iv.value, layout);
      return { site, kind: 'where', mask: unitMask(iv, shape, iv.units), operand: iv.value };
    case 'patch':
      if (!patched) throw new Error(`patch on '${iv.site}': the source run gave no value`);
      checkTensor(iv, "the source run's value", patched, layout);
      return { site, kind: 'where', mask: unitMask(iv, shape, iv.units), operand: patched };
    case 'mask':
      // Keep the listed units: the replacement (zero) goes where the mask is false, so invert it.
      return { site, kind: 'where', mask: invert(unitMask(iv, shape, iv.keep)), operand: scalarLike(dtype, 0) };
    case 'add': {
      const v = perUnit(iv, 'the vector', iv.value, layout);
      return { site, kind: 'add', operand: iv.scale === undefined || iv.scale === 1 ? v : scaled(v, iv.scale) };
    }
    case 'scale': {
      const f = typeof iv.factor === 'number' ? scalarLike(dtype, iv.factor) : perUnit(iv, 'the factor', iv.factor, layout);
      return { site, kind: 'mul', operand: f };
    }
  }
}

function invert(m: Tensor<'bool'>): Tensor<'bool'> {
  return new Tensor('bool', m.data.map((x) => 1 - x), m.shape);
}

function scaled(t: Tensor, s: number): Tensor {
  if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`add: scale needs a float vector, got ${t.dtype}`);
  return new Tensor(t.dtype, (t.data as Float32Array).map((x) => x * s), t.shape);
}

/** A structural key: sessions are shared between interventions that differ only in fed values. */
export function variantKey(rs: readonly Resolved[]): string {
  return rs.map((r) => `${r.kind}@${r.site.value}:${r.mask?.rank ?? '-'}:${r.operand?.rank ?? '-'}`).join('|');
}

/**
 * Rewrites the graph so each resolved intervention applies, in list order, and returns the feeds it needs.
 * Forms: Where(mask, operand, v) replaces; Add(v, operand) and Mul(v, operand) shift and scale; the batch mean is
 * where(mask, ReduceMean(v, axis 0), v).
 */
export function compileInterventions(g: Graph, rs: readonly Resolved[]): { graph: Graph; feeds: Record<string, Tensor> } {
  const feeds: Record<string, Tensor> = {};
  const opset = g.opset.get('') ?? 0;
  if (rs.length > 0 && opset < 9) throw new Error(`interventions need opset 9 or later (Where); this model uses opset ${opset}`);
  let graph = g;
  const taken = new Set<string>();
  const input = (base: string, t: Tensor): string => {
    const name = freshName(graph, base, taken);
    taken.add(name);
    feeds[name] = t;
    graph = addInputs(graph, [makeValueInfo(name, ONNX_DTYPE[t.dtype])]);
    return name;
  };
  rs.forEach((r, i) => {
    const v = r.site.value;
    const maskName = r.mask ? input(`glassbox_mask_${i}`, r.mask) : '';
    const operandName = r.operand ? input(`glassbox_operand_${i}`, r.operand) : '';
    graph = interpose(graph, v, (source) => {
      const nodes: NodeProto[] = [];
      const inits: TensorProto[] = [];
      const tag = `glassbox/${r.kind}_${i}`;
      if (r.kind === 'where') nodes.push(makeNode('Where', [maskName, operandName, source], [v], { name: tag }));
      else if (r.kind === 'add' || r.kind === 'mul') {
        nodes.push(makeNode(r.kind === 'add' ? 'Add' : 'Mul', [source, operandName], [v], { name: tag }));
      } else {
        const mean = freshName(graph, `${v}__mean`, taken);
        taken.add(mean);
        if (opset >= 18) {
          const axes = freshName(graph, `${v}__axes`, taken);
          taken.add(axes);
          inits.push(tensorToProto(Tensor.int64([0]), axes));
          nodes.push(makeNode('ReduceMean', [source, axes], [mean], { name: tag, attributes: [attr('keepdims', { int: 1 })] }));
        } else {
          nodes.push(makeNode('ReduceMean', [source], [mean], { name: tag, attributes: [attr('axes', { ints: [0] }), attr('keepdims', { int: 1 })] }));
        }
        nodes.push(makeNode('Where', [maskName, mean, source], [v], { name: `${tag}/mask` }));
      }
      return { nodes, initializers: inits };
    });
  });
  return { graph, feeds };
}
