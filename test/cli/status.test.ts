/** The status line of long commands: written in place on a terminal, throttled, silent in logs and pipes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { statusLine } from '../../src/cli/status.js';

function stream(isTTY: boolean) {
  const written: string[] = [];
  return { written, isTTY, write: (s: string) => written.push(s) };
}

test('on a terminal the status line is rewritten in place and cleared; elsewhere nothing is written', () => {
  const tty = stream(true);
  const s = statusLine('influence:', tty, 0);
  s.stage({ stage: 'training features', done: 256, total: 1000 });
  s.update('solving');
  s.clear();
  s.clear(); // nothing shown: nothing to clear
  assert.deepEqual(tty.written, ['\rinfluence: training features 256/1000\x1b[K', '\rinfluence: solving\x1b[K', '\r\x1b[K']);
  const pipe = stream(false);
  const p = statusLine('influence:', pipe, 0);
  p.stage({ stage: 'x', done: 1, total: 2 });
  p.clear();
  assert.deepEqual(pipe.written, []);
});

test('updates closer together than the interval are dropped', () => {
  const tty = stream(true);
  const s = statusLine('', tty, 60_000);
  s.update('a');
  s.update('b');
  assert.deepEqual(tty.written, ['\ra\x1b[K']);
});
