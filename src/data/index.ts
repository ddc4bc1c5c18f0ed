export { parseNpy, encodeNpy, readNpy, writeNpy } from './npy.js';
export { decodePng, encodePng, readPng, writePng } from './png.js';
export type { DecodePngOptions, EncodePngOptions, ImageLayout } from './png.js';
