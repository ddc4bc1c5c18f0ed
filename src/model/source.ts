/** Reading a model from a path (Node only: `node:fs` is imported when a path is given, never in a browser build). */
import { inlineExternalData, hasExternalData } from '../onnx/external.js';
import { decodeModel, type ModelProto } from '../onnx/proto.js';

export async function readModelFile(path: string): Promise<ModelProto> {
  const fs = await import('node:fs/promises');
  const { dirname, join } = await import('node:path');
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${path}: no such file` : code === 'EISDIR' ? `${path}: is a directory, not an .onnx file` : `${path}: ${(e as Error).message}`);
  }
  const model = decodeModel(bytes, path);
  if (hasExternalData(model)) await inlineExternalData(model, (loc) => fs.readFile(join(dirname(path), loc)), path);
  return model;
}
