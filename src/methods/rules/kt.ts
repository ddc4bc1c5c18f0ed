/**
 * KT (Fu, "Rule generation from neural networks", IEEE SMC 1994), a global decompositional rule extraction
 * (Zhang et al. 2021 §III-A): every hidden and output unit of a small sigmoid/ReLU MLP on boolean inputs is read as a
 * threshold unit, and its rules are the minimal sets of attributes (positive-weight inputs on, negative-weight inputs
 * off) whose worst-case contribution still exceeds the threshold — and, for the negative rules, the minimal sets that
 * keep it below. The subset search stops expanding a set once it is a rule and cuts any set that cannot reach the
 * threshold with every remaining weight; the rules of the layers then compose into rules on the inputs per class.
 *
 * @example
 * const r = await kt(trainer.exportModel(), { inputNames: ['a', 'b', 'c', 'd', 'e', 'f'] });
 * r.classes[1].rules; // ['IF a AND b THEN class 1', 'IF c AND NOT d THEN class 1']
 * r.checks;           // fidelity to the network (exact over the truth table), search cost, rule counts…
 */
import type { Check } from '../attribution/explanation.js';
import type { Dataset } from '../../data/datasets/dataset.js';
import type { ModelProto } from '../../onnx/proto.js';
import { passive, type Taxonomy } from '../taxonomy.js';
import { andDnf, absorb, anyRuleHolds, DnfTooLarge, dnfHolds, formatRule, formatTerm, maskOf, MAX_TRUTH_TABLE_BITS, rulesToDnf, simplifyDnf, TRUE, truthTable, type Term } from './boolean.js';
import {
  evaluationSet, forward, networkClasses, readMlp, unitLevels, unitRules, activate,
  type BoolUnit, type EvalSet, type Grouping, type UnitRules,
} from './decompositional.js';

export interface RuleExtractionOptions {
  /**
   * 0/1 inputs the rules are extracted on: hidden levels, M-of-N's threshold fits and the fidelity check (default: the
   * truth table, or random inputs when there are more than maxExactInputs).
   */
  readonly data?: Dataset<'float32'>;
  /** Held-out 0/1 inputs for a second fidelity (and accuracy) check. */
  readonly test?: Dataset<'float32'>;
  readonly inputNames?: readonly string[];
  readonly classNames?: readonly string[];
  /** Hidden units' low/high values: 'observed' mean activation when off/on (default), or 'binary' 0/1 (tanh −1/1). */
  readonly levels?: 'observed' | 'binary';
  /** Fidelity is exact over the truth table up to this many inputs (default 16). */
  readonly maxExactInputs?: number;
  /** Random boolean inputs evaluated when there are more inputs and no data (default 4096, seed 0). */
  readonly samples?: number;
  readonly seed?: number;
  /** A unit with more inputs of non-zero weight than this is an error: the exact search would explode (default 24). */
  readonly maxFanIn?: number;
  /** Most rules per unit and polarity (default 5000). */
  readonly maxRules?: number;
  /** Most antecedents per rule (default: unlimited, the rules are then exact for the abstracted unit). */
  readonly maxLiterals?: number;
  /** Most terms of a composed DNF on the inputs; beyond it the class rules stay layered (default 1000). */
  readonly maxTerms?: number;
  /** Fidelity that passes the check (default 0.95). */
  readonly minFidelity?: number;
}

/** One unit's rules, as text over the layer below, with what the search cost. */
export interface UnitReport {
  readonly name: string;
  /** 0 for the first hidden layer; the decision units of the output come last. */
  readonly layer: number;
  readonly on: readonly string[];
  readonly off: readonly string[];
  /** The weights as the search saw them: signed gains shared by groups of inputs (KT: one input per group). */
  readonly groups: readonly { readonly gain: number; readonly members: readonly string[] }[];
  readonly base: number;
  readonly examined: number;
  readonly exhaustive: number;
  /** How often its rules agree with the network's own unit, fed the network's own booleans of the layer below. */
  readonly agreement: number;
}

export interface ClassRules {
  readonly name: string;
  /** The class's rules as a DNF on the inputs, or null where composing exceeded maxTerms. */
  readonly dnf: readonly Term[] | null;
  /** `IF … THEN class` lines (layered rules where dnf is null). */
  readonly rules: readonly string[];
}

/** The one result type of decompositional rule extraction. */
export interface DecompositionalRules {
  readonly method: string;
  readonly taxonomy: Taxonomy;
  readonly inputNames: readonly string[];
  readonly classNames: readonly string[];
  readonly units: readonly UnitReport[];
  readonly classes: readonly ClassRules[];
  /** Agreement of the rules' class with the network's on the evaluation inputs. */
  readonly fidelity: number;
  readonly cost: { readonly examined: number; readonly exhaustive: number; readonly saved: number };
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/** How a method groups a unit's weights before the search (KT: each weight alone; M-of-N: clusters). */
export type GroupUnit = (unit: BoolUnit, ctx: { readonly prev: readonly bigint[]; readonly target: Uint8Array }) => Grouping;

export const KT_TAXONOMY = passive('rules', 'global');

/** KT: every unit's exact rules by the pruned subset search, composed into class rules on the inputs. */
export function kt(model: ModelProto | Uint8Array, options: RuleExtractionOptions = {}): Promise<DecompositionalRules> {
  return extractRules('kt', model, options, (u) => ({ base: u.base, groups: Array.from(u.gains, (gain, v) => ({ gain, members: [v] })) }));
}

interface Decision {
  readonly unit: BoolUnit;
  readonly target: Uint8Array;
}

/** The shared driver of KT and M-of-N: read, abstract, search each unit, simulate, compose, check. */
export async function extractRules(method: string, model: ModelProto | Uint8Array, o: RuleExtractionOptions, group: GroupUnit): Promise<DecompositionalRules> {
  const t0 = performance.now();
  const who = method;
  const mlp = readMlp(model, who);
  const n = mlp.inputSize;
  const maxExact = o.maxExactInputs ?? 16;
  const lim = { who, maxRules: o.maxRules ?? 5000, maxLiterals: o.maxLiterals ?? Infinity };
  const maxFanIn = o.maxFanIn ?? 24;
  for (const [k, v] of Object.entries({ maxRules: lim.maxRules, maxFanIn, maxTerms: o.maxTerms ?? 1, samples: o.samples ?? 1 })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${who}: ${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(maxExact) || maxExact < 0 || maxExact > MAX_TRUTH_TABLE_BITS) throw new Error(`${who}: maxExactInputs must be an integer in [0, ${MAX_TRUTH_TABLE_BITS}], got ${maxExact}`);
  if (o.minFidelity !== undefined && !(o.minFidelity >= 0 && o.minFidelity <= 1)) throw new Error(`${who}: minFidelity must be in [0, 1], got ${o.minFidelity}`);
  if (!(lim.maxLiterals >= 1)) throw new Error(`${who}: maxLiterals must be ≥ 1, got ${lim.maxLiterals}`);
  const inputNames = [...(o.inputNames ?? o.data?.featureNames ?? Array.from({ length: n }, (_, i) => `x${i}`))];
  if (inputNames.length !== n) throw new Error(`${who}: ${inputNames.length} input names for ${n} inputs`);
  const top = mlp.layers[mlp.layers.length - 1];
  const nClasses = Math.max(2, top.outSize);
  const classNames = [...(o.classNames ?? o.data?.classNames ?? Array.from({ length: nClasses }, (_, c) => `class ${c}`))];
  if (classNames.length !== nClasses) throw new Error(`${who}: ${classNames.length} class names for ${nClasses} classes`);
  for (const l of mlp.layers) {
    for (let j = 0; j < l.outSize; j++) {
      const fanIn = l.w.subarray(j * l.inSize, (j + 1) * l.inSize).filter((x) => x !== 0).length;
      const unit = `${l.name}[${j}]`;
      if (fanIn > maxFanIn) throw new Error(`${who}: unit ${unit} has ${fanIn} inputs of non-zero weight; the exact search is limited to maxFanIn = ${maxFanIn}`);
    }
  }
  const set = evaluationSet(who, n, { data: o.data, maxExact, samples: o.samples ?? 4096, seed: o.seed ?? 0 });
  const levels = o.levels ?? 'observed';

  const pres = forward(mlp, set.x, set.rows);
  const net = await networkClasses(model, mlp, set);
  const parseDiff = maxOutputDiff(pres[pres.length - 1], net.outputs, mlp.final, top.outSize);

  // Hidden layers, each unit abstracted over the booleans of the layer below (the network's own, on the eval rows).
  let prev = Array.from({ length: set.rows }, (_, r) => maskOf(set.x, r, n));
  let lo: Float64Array = new Float64Array(n);
  let hi: Float64Array = new Float64Array(n).fill(1);
  let names = inputNames;
  const layers: UnitRules[][] = [];
  const reports: UnitReport[] = [];
  const search = (u: BoolUnit, target: Uint8Array, layer: number): UnitRules => {
    const fanIn = u.gains.filter((x) => x !== 0).length;
    const grouping = group(u, { prev, target });
    const rules = unitRules(grouping, fanIn, { ...lim, unit: u.name });
    let agree = 0;
    for (let r = 0; r < set.rows; r++) if (anyRuleHolds(rules.on, prev[r]) === (target[r] === 1)) agree++;
    const fmt = (list: UnitRules['on']) => list.map((rule) => formatRule(rule, names));
    reports.push({
      name: u.name, layer, on: fmt(rules.on), off: fmt(rules.off), base: grouping.base, examined: rules.examined, exhaustive: rules.exhaustive,
      groups: grouping.groups.map((g) => ({ gain: g.gain, members: g.members.map((v) => names[v]) })), agreement: agree / set.rows,
    });
    return rules;
  };
  const unitOf = (name: string, w: ArrayLike<number>, b: number): BoolUnit => {
    let base = b;
    const gains = new Float64Array(w.length);
    for (let i = 0; i < w.length; i++) {
      base += w[i] * lo[i];
      gains[i] = w[i] * (hi[i] - lo[i]);
    }
    return { name, base, gains };
  };
  mlp.layers.slice(0, -1).forEach((l, li) => {
    const pre = pres[li];
    const lv = unitLevels(l, pre, set.rows, levels, who);
    const layerRules: UnitRules[] = [];
    for (let j = 0; j < l.outSize; j++) {
      const target = Uint8Array.from({ length: set.rows }, (_, r) => (pre[r * l.outSize + j] > 0 ? 1 : 0));
      layerRules.push(search(unitOf(`${l.name}[${j}]`, l.w.subarray(j * l.inSize, (j + 1) * l.inSize), l.b[j]), target, li));
    }
    layers.push(layerRules);
    prev = prev.map((_, r) => maskOf(Uint8Array.from({ length: l.outSize }, (_, j) => (pre[r * l.outSize + j] > 0 ? 1 : 0)), 0, l.outSize));
    ({ lo, hi } = lv);
    names = Array.from({ length: l.outSize }, (_, j) => `${l.name}[${j}]`);
  });

  // Output: class c wins when its logit beats every other; each comparison is a threshold unit on the last layer.
  const logits = pres[pres.length - 1];
  const C = top.outSize;
  const decisions: Decision[] = [];
  const classSpec: { u: number; on: boolean }[][] = [];
  const diffUnit = (c: number, k: number): Decision => {
    const w = Float64Array.from({ length: top.inSize }, (_, i) => top.w[c * top.inSize + i] - (k < 0 ? 0 : top.w[k * top.inSize + i]));
    const name = k < 0 ? `${top.name}[${c}]` : `${classNames[c]} > ${classNames[k]}`;
    const target = Uint8Array.from({ length: set.rows }, (_, r) => (logits[r * C + c] - (k < 0 ? 0 : logits[r * C + k]) > 0 ? 1 : 0));
    return { unit: unitOf(name, w, top.b[c] - (k < 0 ? 0 : top.b[k])), target };
  };
  if (C <= 2) {
    decisions.push(C === 1 ? diffUnit(0, -1) : diffUnit(1, 0));
    classSpec.push([{ u: 0, on: false }], [{ u: 0, on: true }]);
  } else {
    for (let c = 0; c < C; c++) {
      classSpec.push([]);
      for (let k = 0; k < C; k++) {
        if (k === c) continue;
        classSpec[c].push({ u: decisions.length, on: true });
        decisions.push(diffUnit(c, k));
      }
    }
  }
  const outRules = decisions.map((d) => search(d.unit, d.target, mlp.layers.length - 1));

  const network = { layers, outRules, classSpec };
  const sim = simulate(network, set.x, set.rows, n);
  const fidelity = agreement(sim.classes, net.classes);
  let exact: { fidelity: number; rows: number } | undefined;
  if (!set.exact && n <= maxExact) {
    const table: EvalSet = { x: truthTable(n), rows: 2 ** n, source: 'truth table', exact: true };
    const netTable = await networkClasses(model, mlp, table);
    exact = { fidelity: agreement(simulate(network, table.x, table.rows, n).classes, netTable.classes), rows: table.rows };
  }

  let heldOut: Check[] = [];
  if (o.test) {
    const t = evaluationSet(who, n, { data: o.test, maxExact, samples: 1, seed: 0 });
    const netT = await networkClasses(model, mlp, t);
    const simT = simulate(network, t.x, t.rows, n).classes;
    const f = agreement(simT, netT.classes);
    heldOut = [
      { name: 'fidelity (held out)', value: f, passed: f >= (o.minFidelity ?? 0.95), detail: `agreement with the network on ${t.rows} held-out rows (${t.source})` },
      ...accuracyChecks(simT, netT.classes, t.labels!, ' (held out)'),
    ];
  }

  let composed: Term[][] | null = null;
  let composeNote = '';
  try {
    composed = compose(network, o.maxTerms ?? 1000);
  } catch (e) {
    if (!(e instanceof DnfTooLarge)) throw e;
    composeNote = e.message;
  }
  const classes: ClassRules[] = classNames.map((name, c) => ({
    name,
    dnf: composed?.[c] ?? null,
    rules: composed
      ? composed[c].map((t) => `IF ${formatTerm(t, inputNames)} THEN ${name}`)
      : [`IF ${classSpec[c].map((s) => `${s.on ? '' : 'NOT '}(${reports[reports.length - outRules.length + s.u].name})`).join(' AND ')} THEN ${name}`],
  }));

  const examined = reports.reduce((s, r) => s + r.examined, 0);
  const exhaustive = reports.reduce((s, r) => s + r.exhaustive, 0);
  const ruleCount = reports.reduce((s, r) => s + r.on.length + r.off.length, 0);
  const checks: Check[] = [
    { name: 'weights read', value: parseDiff.diff, passed: parseDiff.diff <= 1e-4 * Math.max(1, parseDiff.scale), detail: `max |output| difference between the weights read from the graph and ONNX Runtime, over ${set.rows} rows` },
    { name: 'fidelity', value: fidelity, passed: fidelity >= (o.minFidelity ?? 0.95), detail: `the rules' class equals the network's on ${Math.round(fidelity * set.rows)} of ${set.rows} rows (${set.source}${set.exact ? ', exact' : ''})` },
    ...(exact ? [{ name: 'fidelity (truth table)', value: exact.fidelity, detail: `agreement over all ${exact.rows} boolean inputs, exact` }] : []),
    ...(set.labels ? accuracyChecks(sim.classes, net.classes, set.labels, '') : []),
    ...heldOut,
    { name: 'search cost', value: examined, detail: `${examined} antecedent sets examined vs ${exhaustive} exhaustive (2·2^fan-in per unit): ${(100 * (1 - examined / exhaustive)).toFixed(2)}% saved` },
    { name: 'rules', value: ruleCount, detail: `${ruleCount} unit rules (${reports.length} units); class rules on the inputs: ${composed ? composed.map((d) => d.length).join(' / ') : `not composed (${composeNote})`}` },
    { name: 'on/off rules complementary', value: sim.clashes, passed: sim.clashes === 0, detail: `unit evaluations on the rule network where the positive and the negative rules both hold or neither does` },
    { name: 'unit agreement', value: reports.map((r) => r.agreement), detail: 'per unit: its rules vs the network unit, fed the network\'s own booleans of the layer below' },
  ];
  if (composed) {
    const dnfs = composed;
    let bad = 0;
    for (let r = 0; r < set.rows; r++) {
      const on = maskOf(set.x, r, n);
      const c = dnfs.findIndex((d) => dnfHolds(d, on));
      if (c !== sim.classes[r]) bad++;
    }
    checks.push({ name: 'composed = layered', value: bad, passed: bad === 0, detail: 'rows where the class rules on the inputs disagree with the layer-by-layer rule network' });
  }
  return {
    method, taxonomy: KT_TAXONOMY, inputNames, classNames, units: reports, classes, fidelity, checks,
    cost: { examined, exhaustive, saved: 1 - examined / exhaustive },
    params: { levels, evaluation: set.source, test: o.test?.name, maxFanIn, maxRules: lim.maxRules, maxLiterals: lim.maxLiterals, final: mlp.final },
    ms: performance.now() - t0,
  };
}

interface RuleNetwork {
  readonly layers: readonly (readonly UnitRules[])[];
  readonly outRules: readonly UnitRules[];
  readonly classSpec: readonly (readonly { u: number; on: boolean }[])[];
}

/** The rule network's class per row (−1 where no class's rules hold), and how often on/off rules clash. */
function simulate(net: RuleNetwork, x: Float32Array, rows: number, n: number): { classes: Int32Array; clashes: number } {
  const classes = new Int32Array(rows);
  let clashes = 0;
  for (let r = 0; r < rows; r++) {
    let v = maskOf(x, r, n);
    const step = (units: readonly UnitRules[]) => {
      let next = 0n;
      units.forEach((u, j) => {
        const on = anyRuleHolds(u.on, v);
        if (on === anyRuleHolds(u.off, v)) clashes++;
        if (on) next |= 1n << BigInt(j);
      });
      return next;
    };
    for (const l of net.layers) v = step(l);
    const out = step(net.outRules);
    classes[r] = net.classSpec.findIndex((spec) => spec.every((s) => (((out >> BigInt(s.u)) & 1n) === 1n) === s.on));
  }
  return { classes, clashes };
}

/** Class rules on the inputs: each unit's DNF over the layer below with every literal replaced by that unit's DNF. */
function compose(net: RuleNetwork, maxTerms: number): Term[][] {
  let below: { on: Term[]; off: Term[] }[] | null = null;
  const lift = (u: UnitRules) => ({ on: substitute(rulesToDnf(u.on, maxTerms), below, maxTerms), off: substitute(rulesToDnf(u.off, maxTerms), below, maxTerms) });
  for (const l of net.layers) below = l.map(lift);
  const out = net.outRules.map(lift);
  return net.classSpec.map((spec) => simplifyDnf(spec.reduce<Term[]>((acc, s) => andDnf(acc, s.on ? out[s.u].on : out[s.u].off, maxTerms), [...TRUE])));
}

function substitute(dnf: Term[], below: { on: Term[]; off: Term[] }[] | null, maxTerms: number): Term[] {
  if (!below) return dnf;
  const out: Term[] = [];
  for (const t of dnf) {
    let acc: Term[] = [...TRUE];
    below.forEach((u, j) => {
      const bit = 1n << BigInt(j);
      if (t.pos & bit) acc = andDnf(acc, u.on, maxTerms);
      if (t.neg & bit) acc = andDnf(acc, u.off, maxTerms);
    });
    out.push(...acc);
  }
  return absorb(out);
}

function agreement(a: Int32Array, b: Int32Array): number {
  let k = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) k++;
  return a.length === 0 ? 0 : k / a.length;
}

function accuracyChecks(rules: Int32Array, net: Int32Array, labels: Int32Array, suffix: string): Check[] {
  const acc = (p: Int32Array) => agreement(p, labels);
  return [
    { name: `rule accuracy${suffix}`, value: acc(rules), detail: 'the rules\' class vs the data labels' },
    { name: `network accuracy${suffix}`, value: acc(net), detail: 'the network\'s class vs the data labels' },
  ];
}

/** The largest difference between the outputs implied by the read weights and those ONNX Runtime computed. */
function maxOutputDiff(logits: Float64Array, outputs: Float32Array, final: string, c: number): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let r = 0; r < logits.length / c; r++) {
    const row = Array.from(logits.subarray(r * c, (r + 1) * c));
    const m = Math.max(...row);
    const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
    row.forEach((x, k) => {
      const y = final === 'softmax' ? Math.exp(x - m) / z : final === 'sigmoid' ? activate('sigmoid', x) : final === 'tanh' ? Math.tanh(x) : x;
      diff = Math.max(diff, Math.abs(y - outputs[r * c + k]));
      scale = Math.max(scale, Math.abs(y));
    });
  }
  return { diff, scale };
}
