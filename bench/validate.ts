// What checking a received message costs on the hot path: a call's header on the agent, an output and a result reply
// on the client. The schema checks (protocol/validate.ts, TypeBox compiled) beside the hand-written checks they
// replaced (bench/baseline/hand-validate.ts), in the same run; JSON.parse of the same header for scale. Medians of
// ROUNDS rounds of BATCH messages each, in ns per message. Run: node dist/bench/validate.js

import { PROTOCOL_VERSION } from '../protocol/messages';
import { validateReply, validateRequest } from '../protocol/validate';
import { handCall, handOutput, handResult } from './baseline/hand-validate';
import { median, table } from './stats';

const ROUNDS = 31;
const BATCH = 20_000;

const call = {
  v: PROTOCOL_VERSION,
  type: 'call',
  id: 'k1f3a9-42',
  snapshot: 'ab'.repeat(32),
  code: { kind: 'pickle', filename: 'cell-12.js' },
  options: { timeoutMs: 60_000, cwd: 'src/models' },
};
const output = {
  v: PROTOCOL_VERSION,
  type: 'output',
  re: 'k1f3a9-42',
  stream: 'stdout',
  text: 'epoch 3/20: loss 0.4312, accuracy 0.8811\n',
};
const result = { v: PROTOCOL_VERSION, type: 'result', re: 'k1f3a9-42', worker: 2, elapsedMs: 5123 };

/** ns per message: median over rounds, each round checking BATCH fresh copies (as a receiver gets them). */
function nsPerMessage(header: object, check: (parsed: Record<string, unknown>) => unknown): number {
  const text = JSON.stringify(header);
  const copies = Array.from({ length: BATCH }, () => JSON.parse(text) as Record<string, unknown>);
  const samples: number[] = [];
  let sink = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (const copy of copies) if (check(copy)) sink++;
    samples.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  if (sink === 0) throw new Error('nothing was checked');
  return median(samples);
}

const parse = (header: object) => {
  const frame = Buffer.from(JSON.stringify(header));
  return () => JSON.parse(frame.toString('utf8')) as unknown;
};

const rows: (string | number)[][] = [['message', 'hand-written ns', 'schema ns', 'schema / hand', 'JSON.parse ns']];
const cases: [string, object, (h: Record<string, unknown>) => unknown, (h: Record<string, unknown>) => unknown][] = [
  ['call header (agent)', call, (h) => handCall(h, 1), (h) => validateRequest(h, 1)],
  ['output reply (client)', output, (h) => handOutput(h), (h) => validateReply(h, 0)],
  ['result reply (client)', result, (h) => handResult(h, 1), (h) => validateReply(h, 1)],
];
for (const [name, header, hand, schema] of cases) {
  // Alternate the two, twice, so that neither has the warmer machine; the second pass's figures are shown.
  let handNs = 0;
  let schemaNs = 0;
  for (let pass = 0; pass < 2; pass++) {
    handNs = nsPerMessage(header, hand);
    schemaNs = nsPerMessage(header, schema);
  }
  const parseOnce = parse(header);
  const parseNs = nsPerMessage(header, () => parseOnce());
  rows.push([name, handNs.toFixed(0), schemaNs.toFixed(0), (schemaNs / handNs).toFixed(2), parseNs.toFixed(0)]);
}
console.log(`Checking a received header (median of ${ROUNDS} rounds of ${BATCH.toLocaleString('en')} messages)\n`);
console.log(table(rows));
