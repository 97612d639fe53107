// Pickle + unpickle time for a notebook-like function with 50 captured values (medians of 200 runs), against the
// target of a capture under 2 ms; plus what the out-of-band path costs for a large array; and the first pickle of a
// process (it parses, and starts the scope probe's worker) in fresh processes, with the pickler warmed when the
// process starts (as the kernel does) beside without. Run: node dist/bench/pickle.js

import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import * as vm from 'node:vm';

import { pickleCall, warmPickler } from '../kernel-ext/client/capture';
import { localRegistry } from '../kernel-ext/client/capture/registry';
import { pickleResult, requireFromRoot, unpickle } from '../pickle';
import { median, percentile, table } from './stats';

const RUNS = 200;
/** Fresh processes per first-pickle figure. */
const PROCESSES = 7;
/** How long the process is idle before its first pickle: a kernel starts, then the user types the first cell. */
const IDLE_MS = 500;

/** A notebook: earlier cells put values in `exports` (tslab's locals), the last cell defines `train`. */
function notebookFunction(): { fn: Function; locals: Record<string, unknown> } {
  const locals: Record<string, unknown> = {};
  const cell = (code: string): unknown =>
    (
      vm.runInThisContext(`(function (exports, require) { ${code}\n})`, { filename: 'bench-cell.js' }) as (
        e: unknown,
        r: NodeRequire,
      ) => unknown
    )(locals, require);
  // 30 values from earlier cells, read as exports.NAME.
  cell(`
    exports.lr = 0.01; exports.epochs = 20; exports.batch = 64; exports.seed = 42; exports.name = 'run-7';
    exports.layers = [784, 256, 128, 10]; exports.dropout = 0.2; exports.momentum = 0.9; exports.decay = 1e-4;
    exports.labels = Array.from({ length: 10 }, (_, i) => 'class ' + i);
    exports.config = { optimizer: 'sgd', schedule: { warmup: 3, gamma: 0.5 }, tags: ['a', 'b'] };
    exports.vocab = new Map(Array.from({ length: 50 }, (_, i) => ['w' + i, i]));
    exports.stop = new Set(['the', 'a', 'an']);
    exports.started = new Date(0);
    exports.pattern = /[a-z]+/g;
    exports.weights = new Float32Array(1024);
    exports.bias = new Float32Array(10);
    exports.fs = require('fs');
    exports.path = require('path');
    exports.relu = (x) => Math.max(0, x);
    exports.sigmoid = (x) => 1 / (1 + Math.exp(-x));
    exports.softmax = (xs) => { const m = Math.max(...xs); const e = xs.map((x) => Math.exp(x - m)); const s = e.reduce((a, b) => a + b, 0); return e.map((x) => x / s); };
    class Layer { constructor(n, act) { this.n = n; this.act = act; } forward(xs) { return xs.map(this.act); } }
    exports.Layer = Layer;
    exports.hidden = new Layer(256, exports.relu);
    exports.output = new Layer(10, exports.sigmoid);
    exports.metrics = { loss: [], acc: [] };
    exports.log = (...args) => exports.metrics.loss.push(args);
    exports.clip = (x, lo = -1, hi = 1) => Math.min(hi, Math.max(lo, x));
    exports.big = 2n ** 64n;
    exports.nothing = undefined;
  `);
  // The last cell: 20 values from its own closure, 30 from the locals.
  const fn = cell(`
    const k1 = 1, k2 = 2, k3 = 3, k4 = 4, k5 = 5, k6 = 'six', k7 = [7], k8 = { v: 8 }, k9 = 9n, k10 = null;
    const h1 = (x) => x + k1, h2 = (x) => h1(x) * k2, h3 = (x) => h2(x) - k3;
    let step = 0;
    const tick = () => ++step;
    const shared = { k8, k7 };
    const helpers = { h1, h2, h3, tick };
    const table = [shared, helpers, k8];
    const ratio = k4 / k5;
    const tag = Symbol('run');
    return function train(data) {
      tick();
      const xs = exports.hidden.forward(data).map(h3);
      const out = exports.softmax(exports.output.forward(xs.slice(0, 10)));
      exports.log(exports.lr, exports.epochs, exports.batch, exports.seed, exports.name, exports.layers, exports.dropout,
        exports.momentum, exports.decay, exports.labels, exports.config, exports.vocab, exports.stop, exports.started,
        exports.pattern, exports.weights, exports.bias, exports.fs, exports.path, exports.relu, exports.sigmoid,
        exports.Layer, exports.metrics, exports.clip, exports.big, exports.nothing, exports.softmax, exports.hidden, exports.output);
      return [out, k6, k9, k10, ratio, tag, table, step];
    };
  `) as Function;
  return { fn, locals };
}

function time(run: () => void): number[] {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return samples;
}

function main(): void {
  const { fn, locals } = notebookFunction();
  const args = [[0.5, -1, 2, 3, -4, 5, 6, -7, 8, 9, 10]];
  const context = { requireModule: requireFromRoot(process.cwd()) };

  const coldStart = process.hrtime.bigint();
  let frames = pickleCall(fn, args, { locals });
  const cold = Number(process.hrtime.bigint() - coldStart) / 1e6;

  for (let i = 0; i < 20; i++) unpickle(pickleCall(fn, args, { locals }), context); // warm up
  const pickleTimes = time(() => {
    frames = pickleCall(fn, args, { locals });
  });
  const unpickleTimes = time(() => {
    unpickle(frames, context);
  });
  let result: unknown;
  const callTimes = time(() => {
    const [remote, ...remoteArgs] = unpickle(frames, context) as [(...args: unknown[]) => unknown, ...unknown[]];
    result = remote(...remoteArgs);
  });
  const resultTimes = time(() => {
    unpickle(pickleResult(result), { ...context, localClasses: localRegistry });
  });
  const check = unpickle(frames, context) as [(...args: unknown[]) => unknown, ...unknown[]];
  const out = check[0](...check.slice(1)) as unknown[];
  if (!Array.isArray(out) || out.length !== 8)
    throw new Error('the benchmark function did not run remotely as expected');

  const bodyBytes = frames[0]!.byteLength;
  const big = new Float64Array(32 * 1024 * 1024); // 256 MiB
  big[big.length - 1] = 1;
  const bigPickle = time1(() => pickleCall((a: Float64Array) => a.length, [big]));
  const bigFrames = pickleCall((a: Float64Array) => a.length, [big]);
  const bigUnpickle = time1(() => unpickle(bigFrames, context));

  console.log(
    `pickle: a notebook function with 50 captured values (30 notebook locals, 20 closure values; 11 functions, a class and 2 instances, a module, typed arrays), ${RUNS} runs each`,
  );
  console.log(
    table([
      ['step', 'median', 'p95', 'target'],
      ['capture + pickle (pickleCall), warm', median(pickleTimes), percentile(pickleTimes, 95), '< 2 ms'],
      ['capture + pickle, first time (parses)', cold, cold, ''],
      ['unpickle (compile + rebuild)', median(unpickleTimes), percentile(unpickleTimes, 95), ''],
      ['unpickle + call', median(callTimes), percentile(callTimes, 95), ''],
      ['result: pickleResult + unpickle', median(resultTimes), percentile(resultTimes, 95), ''],
      ['256 MiB Float64Array argument: pickle', bigPickle, bigPickle, 'no copy'],
      ['256 MiB Float64Array argument: unpickle', bigUnpickle, bigUnpickle, 'no copy'],
    ]),
  );
  console.log(
    `body: ${bodyBytes} bytes; 256 MiB argument: ${bigFrames.length} frames, body ${bigFrames[0]!.byteLength} bytes`,
  );
  const ok = median(pickleTimes) < 2;
  console.log(ok ? 'capture under 2 ms: yes' : 'capture under 2 ms: NO');
}

/** `--first [--warm]`: this process times its first pickle only and prints it (ms). */
async function firstPickle(warm: boolean): Promise<void> {
  if (warm) warmPickler();
  await sleep(IDLE_MS);
  const { fn, locals } = notebookFunction();
  console.log(time1(() => pickleCall(fn, [[1, 2]], { locals })));
}

function firstPickleTimes(warm: boolean): number[] {
  const args = [__filename, '--first', ...(warm ? ['--warm'] : [])];
  return Array.from({ length: PROCESSES }, () => Number(execFileSync(process.execPath, args, { encoding: 'utf8' })));
}

function firstPickles(): void {
  const cold = firstPickleTimes(false);
  const warmed = firstPickleTimes(true);
  console.log(`first pickle of a process, ${PROCESSES} processes each, ${IDLE_MS} ms after it started`);
  console.log(
    table([
      ['', 'median', 'max'],
      ['pickler warmed at process start (warmPickler, as the kernel)', median(warmed), Math.max(...warmed)],
      ['baseline: not warmed', median(cold), Math.max(...cold)],
    ]),
  );
}

function time1(run: () => unknown): number {
  const start = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

if (process.argv.includes('--first')) void firstPickle(process.argv.includes('--warm'));
else {
  main();
  firstPickles();
}
