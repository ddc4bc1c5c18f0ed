/** The Node runtime: onnxruntime-node, native CPU (and CUDA where its libraries are installed). */
import * as ort from 'onnxruntime-node';
import { ortRuntime } from './ort.js';

export const nodeRuntime = ortRuntime(ort, 'onnxruntime-node', ['cpu']);
