import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { aliasFromNodeName } from '../../src/model/sites.js';
import { bitMismatches, maxAbsDiff, torchFixture } from '../helpers.js';

const MODELS = ['mlp', 'cnn', 'resnet18', 'gpt'] as const;

for (const name of MODELS) {
  test(`${name}: outputs match PyTorch, and capturing every site leaves them bit-identical`, async () => {
    const fx = torchFixture(name);
    const model = await Model.load(fx.path);
    const feed = { [model.inputs[0].name]: fx.input };
    const plain = await model.run(feed);
    const y = plain.outputs.logits;
    assert.deepEqual(y.shape, fx.output.shape);
    assert.ok(maxAbsDiff(y, fx.output) < 1e-5, `max |ours - torch| = ${maxAbsDiff(y, fx.output)}`);
    const all = await model.run(feed, { capture: model.sites.map((s) => s.name) });
    assert.equal(bitMismatches(all.outputs.logits, y), 0);
    assert.equal(Object.keys(all.captures).length, model.sites.length);
    // Every captured site has the shape the load-time probe resolved (symbolic dims stand for the batch).
    for (const s of model.sites) {
      const t = all.captures[s.name];
      assert.equal(t.dtype, s.dtype, s.name);
      assert.equal(t.rank, s.shape?.length, s.name);
      s.shape!.forEach((d, i) => typeof d === 'number' && assert.equal(t.shape[i], d, `${s.name} dim ${i}`));
    }
    await model.dispose();
  });
}

test('site aliases come from PyTorch module paths', () => {
  assert.equal(aliasFromNodeName('/c2/Conv'), 'c2.conv');
  assert.equal(aliasFromNodeName('/layer1/layer1.0/conv1/Conv'), 'layer1.0.conv1.conv');
  assert.equal(aliasFromNodeName('/layer2/layer2.0/downsample/downsample.0/Conv'), 'layer2.0.downsample.0.conv');
  assert.equal(aliasFromNodeName('/blocks.1/attn/MatMul_1'), 'blocks.1.attn.matmul_1');
  assert.equal(aliasFromNodeName('p2o.Conv.0'), undefined);
});

test('sites: unique aliases, found by alias or raw name, shapes with the batch symbol', async () => {
  const model = await Model.load(torchFixture('cnn').path);
  assert.deepEqual(
    model.sites.map((s) => [s.name, s.op, s.dtype, s.shape]),
    [
      ['x', 'Input', 'float32', ['N', 1, 28, 28]],
      ['c1.conv', 'Conv', 'float32', ['N', 32, 28, 28]],
      ['relu1.relu', 'Relu', 'float32', ['N', 32, 28, 28]],
      ['c2.conv', 'Conv', 'float32', ['N', 64, 28, 28]],
      ['relu2.relu', 'Relu', 'float32', ['N', 64, 28, 28]],
      ['pool.maxpool', 'MaxPool', 'float32', ['N', 64, 14, 14]],
      ['flatten.flatten', 'Flatten', 'float32', ['N', 12544]],
      ['fc.gemm', 'Gemm', 'float32', ['N', 10]],
    ],
  );
  assert.equal(model.site('/c2/Conv_output_0').name, 'c2.conv');
  assert.equal(model.site('logits').name, 'fc.gemm');
  assert.throws(() => model.site('c2.cnv'), /unknown site 'c2\.cnv'; nearest: c2\.conv/);

  const gpt = await Model.load(torchFixture('gpt').path);
  const names = gpt.sites.map((s) => s.name);
  assert.equal(new Set(names).size, names.length);
  assert.deepEqual(gpt.site('blocks.1.attn.softmax').shape, ['N', 4, 'T', 'T']);
  assert.deepEqual(gpt.site('blocks.0.ln1.layernormalization').shape, ['N', 'T', 64]);
  const resnet = await Model.load(torchFixture('resnet18').path);
  assert.deepEqual(resnet.site('layer4.1.relu_1.relu').shape, ['N', 512, 7, 7]);
});

test('resolveSites gives concrete shapes for given input shapes', async () => {
  const gpt = await Model.load(torchFixture('gpt').path);
  const sites = await gpt.resolveSites({ tokens: [3, 11] });
  assert.deepEqual(sites.find((s) => s.name === 'blocks.0.attn.softmax')?.shape, [3, 4, 11, 11]);
  assert.deepEqual(sites.find((s) => s.name === 'head.matmul')?.shape, [3, 11, 96]);
});

test('relu sites are the rectified conv sites, read in one run', async () => {
  const fx = torchFixture('cnn');
  const model = await Model.load(fx.path);
  const { captures } = await model.run({ x: fx.input }, { capture: ['c1.conv', 'relu1.relu'] });
  const c = captures['c1.conv'];
  const r = captures['relu1.relu'];
  for (let i = 0; i < c.size; i++) assert.equal(r.at(i), Math.max(0, c.at(i)));
});
