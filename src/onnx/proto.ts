/**
 * The one door to ONNX protobuf: every other module imports ONNX message types and codecs from here,
 * never from `onnx-buf` or `@bufbuild/protobuf` directly, so the package can be swapped in one place.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import type {
  AttributeProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetIdProto,
  TensorProto,
  TypeProto,
  ValueInfoProto,
} from 'onnx-buf';

export type { AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto, ValueInfoProto };
export { AttributeProto_AttributeType as AttrType, TensorProto_DataLocation as DataLocation };

/** A value of a shape dimension: a number, a symbolic name, or null when nothing is known. */
export type Dim = number | string | null;

/** Decodes a serialized ModelProto; the error names what is wrong with the bytes. */
export function decodeModel(bytes: Uint8Array, source = 'model'): ModelProto {
  if (bytes.length === 0) throw new Error(`${source}: not an ONNX model (empty file)`);
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    throw new Error(`${source}: not an ONNX model or a truncated one (protobuf decode failed: ${(e as Error).message})`);
  }
  // Random bytes can decode into a message of unknown fields; a real model has a graph, an IR version and opsets.
  if (!model.graph || model.irVersion <= 0n) {
    throw new Error(`${source}: not an ONNX model (no graph or IR version in ${bytes.length} bytes)`);
  }
  if (model.opsetImport.length === 0 && model.irVersion >= 3n) {
    throw new Error(`${source}: not a valid ONNX model (no opset_import)`);
  }
  return model;
}

export function encodeModel(model: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, model);
}

export function encodeTensorProto(t: TensorProto): Uint8Array {
  return toBinary(TensorProtoSchema, t);
}

export function decodeTensorProto(bytes: Uint8Array, source = 'tensor'): TensorProto {
  try {
    return fromBinary(TensorProtoSchema, bytes);
  } catch (e) {
    throw new Error(`${source}: not a TensorProto (${(e as Error).message})`);
  }
}

/** Attribute values that `attr` can build; numbers are ints when `int` is asked for, floats otherwise. */
export type AttrValue =
  | { int: number | bigint }
  | { float: number }
  | { ints: readonly (number | bigint)[] }
  | { floats: readonly number[] }
  | { string: string }
  | { tensor: TensorProto }
  | { graph: GraphProto };

export function attr(name: string, value: AttrValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if ('int' in value) return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(value.int) });
  if ('float' in value) return create(AttributeProtoSchema, { name, type: T.FLOAT, f: value.float });
  if ('ints' in value) return create(AttributeProtoSchema, { name, type: T.INTS, ints: value.ints.map((v) => BigInt(v)) });
  if ('floats' in value) return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: [...value.floats] });
  if ('string' in value) return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(value.string) });
  if ('tensor' in value) return create(AttributeProtoSchema, { name, type: T.TENSOR, t: value.tensor });
  return create(AttributeProtoSchema, { name, type: T.GRAPH, g: value.graph });
}

/** Reads an attribute by name, or undefined. */
export function getAttr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function makeNode(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  opts: { name?: string; domain?: string; attributes?: readonly AttributeProto[] } = {},
): NodeProto {
  return create(NodeProtoSchema, {
    opType,
    input: [...inputs],
    output: [...outputs],
    name: opts.name ?? '',
    domain: opts.domain ?? '',
    attribute: [...(opts.attributes ?? [])],
  });
}

/** A tensor-typed ValueInfoProto; with no elemType, only the name (ONNX Runtime infers the rest). */
export function makeValueInfo(name: string, elemType?: number, shape?: readonly Dim[]): ValueInfoProto {
  if (elemType === undefined) return create(ValueInfoProtoSchema, { name });
  const tensorType = create(TypeProto_TensorSchema, {
    elemType,
    shape:
      shape === undefined
        ? undefined
        : create(TensorShapeProtoSchema, {
            dim: shape.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value:
                  typeof d === 'number'
                    ? { case: 'dimValue', value: BigInt(d) }
                    : typeof d === 'string'
                      ? { case: 'dimParam', value: d }
                      : { case: undefined },
              }),
            ),
          }),
  });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

/** The element type and shape of a tensor type, or undefined for sequences, maps and optionals. */
export function tensorTypeOf(type: TypeProto | undefined): { elemType: number; shape?: Dim[] } | undefined {
  if (!type || type.value.case !== 'tensorType') return undefined;
  const t = type.value.value;
  const shape = t.shape?.dim.map((d): Dim =>
    d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null,
  );
  return { elemType: t.elemType, shape };
}

export function makeGraph(init: Partial<Omit<GraphProto, '$typeName'>>): GraphProto {
  return create(GraphProtoSchema, init);
}

export function makeModel(init: Partial<Omit<ModelProto, '$typeName'>>): ModelProto {
  return create(ModelProtoSchema, init);
}

export function makeTensorProto(init: Partial<Omit<TensorProto, '$typeName'>>): TensorProto {
  return create(TensorProtoSchema, init);
}
