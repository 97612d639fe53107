// Which closure scope is which. The inspector shows a function's scopes as fresh copies of their bindings, so two
// scopes of one factory whose variables hold equal values look the same, whether they are one scope (a counter's
// `inc` and `get`) or two (two counters). This tells them apart by writing: a probe pauses one function at its
// entry (before any of its code runs), writes a marker into one of the scope's variables through the debugger,
// looks whether the other function's scope now holds the marker, writes the old value back, and restarts the
// caller's frame, so the paused function's body never runs. One pause answers for every equal-looking scope seen
// before (a few milliseconds); answers are kept (a closure's scopes never change), so a function pickled again
// costs nothing. The debugger is on only while a pickle probes.
//
// The debugger part runs in a worker thread (scope-probe-worker.ts): a session of this thread could not restart a
// frame while its own code is on the stack. This thread waits for the worker with Atomics.wait, during which Node
// still serves the worker's inspector requests.

import * as path from 'node:path';
import * as util from 'node:util';
import { Worker } from 'node:worker_threads';

/** A function and the index of one of its scopes in its `[[Scopes]]` list (the Global scope excluded, it is last). */
export interface ScopeSide {
  fn: Function;
  index: number;
  /** How many scopes its list has (without Global). */
  count: number;
  /** 'Closure', 'Block'...: checked against the debugger's view of the paused frame. */
  type: string;
}

/** What the worker reads from globalThis[STASH] while the probed function is paused. */
export interface ProbeStash {
  target: Function;
  scopeIndex: number;
  scopeCount: number;
  scopeType: string;
  names: string[];
  originals: unknown[];
  marker: object;
  others: Function[];
  otherIndexes: number[];
  entries: number;
  /** The position in `others` of the function that sees the marker, -1 for none; 'immutable': nothing could be written. */
  result?: number | 'immutable';
}

export const PROBE_STASH = Symbol.for('tslab-remote.scope-probe');
/** The name the worker looks for to restart the frame that called the probed function. */
export const PROBE_CALLER = 'tslabRemoteScopeProbeCall';

const READY = 0;
const ARMED = 1;
const START_TIMEOUT_MS = 5_000;
const ARM_TIMEOUT_MS = 2_000;

export class ScopeProbe {
  private worker: Worker | null = null;
  private ready = false;
  private control: Int32Array | null = null;
  private broken = false;
  private seq = 0;
  private probedSinceRelease = false;
  private readonly answers = new WeakMap<Function, WeakMap<Function, Map<string, boolean>>>();

  /**
   * Which of `candidates` sees the same scope instance as `side` (each at its own index): its position, -1 for
   * none, undefined when it cannot be told (the function cannot be paused safely, or the debugger is unavailable;
   * then the caller keeps its guess). `names` and `values`: the scope's bindings as read now (bindings in their
   * dead zone left out). A scope none of whose bindings can be written (all `const`) may be taken as any of them:
   * nothing can tell the difference.
   */
  find(candidates: readonly ScopeSide[], side: ScopeSide, names: string[], values: unknown[]): number | undefined {
    const open: number[] = [];
    for (let i = 0; i < candidates.length; i++) {
      const known = this.known(candidates[i]!, side);
      if (known === true) return i;
      if (known === undefined) open.push(i);
    }
    if (open.length === 0) return -1;
    if (names.length === 0 || !this.start()) return undefined;
    if (!pausable(side.fn)) return this.findPausingCandidates(candidates, open, side, names, values);
    const others = open.map((i) => candidates[i]!);
    const result = this.probe(side, others, names, values);
    if (result === undefined) return undefined;
    if (result === 'immutable') return open[0];
    others.forEach((other, i) => {
      if (result === -1 || i <= result) this.remember(other, side, i === result);
    });
    return result === -1 ? -1 : open[result];
  }

  /** For a function that cannot be paused (a class, async, a generator): pause each candidate in turn instead. */
  private findPausingCandidates(
    candidates: readonly ScopeSide[],
    open: number[],
    side: ScopeSide,
    names: string[],
    values: unknown[],
  ): number | undefined {
    let unknown = false;
    for (const i of open) {
      const candidate = candidates[i]!;
      const result = pausable(candidate.fn) ? this.probe(candidate, [side], names, values) : undefined;
      if (result === undefined) unknown = true;
      else if (result === 'immutable') return i;
      else {
        this.remember(candidate, side, result === 0);
        if (result === 0) return i;
      }
    }
    return unknown ? undefined : -1;
  }

  /** The pickle is done: the worker turns the debugger off (it slows every compile while on). */
  release(): void {
    if (this.probedSinceRelease) this.worker?.postMessage('release');
    this.probedSinceRelease = false;
  }

  /** A kept answer: whether `a` and `b` see one scope instance, undefined when not known yet. */
  known(a: ScopeSide, b: ScopeSide): boolean | undefined {
    return this.answers.get(a.fn)?.get(b.fn)?.get(`${a.index}:${b.index}`);
  }

  /** Keeps an answer, found here or by the caller. */
  remember(a: ScopeSide, b: ScopeSide, same: boolean): void {
    let byB = this.answers.get(a.fn);
    if (!byB) this.answers.set(a.fn, (byB = new WeakMap<Function, Map<string, boolean>>()));
    let byKey = byB.get(b.fn);
    if (!byKey) byB.set(b.fn, (byKey = new Map<string, boolean>()));
    byKey.set(`${a.index}:${b.index}`, same);
  }

  private probe(caller: ScopeSide, others: ScopeSide[], names: string[], values: unknown[]): ProbeStash['result'] {
    const stash: ProbeStash = {
      target: caller.fn,
      scopeIndex: caller.index,
      scopeCount: caller.count,
      scopeType: caller.type,
      names,
      originals: values,
      marker: {},
      others: others.map((other) => other.fn),
      otherIndexes: others.map((other) => other.index),
      entries: 0,
    };
    const g = globalThis as unknown as Record<symbol, ProbeStash | undefined>;
    g[PROBE_STASH] = stash;
    try {
      const seq = ++this.seq;
      this.probedSinceRelease = true;
      this.worker!.postMessage(seq);
      if (!this.waitFor(ARMED, seq, ARM_TIMEOUT_MS)) return undefined;
      tslabRemoteScopeProbeCall();
      return stash.entries === 2 ? stash.result : undefined;
    } finally {
      g[PROBE_STASH] = undefined;
    }
  }

  /**
   * Starts the worker without waiting for it, so that the first pickle does not pay for its start (a kernel calls
   * this as it starts). Harmless when it runs already or cannot.
   */
  warm(): void {
    if (this.worker || this.broken) return;
    try {
      this.spawn();
    } catch {
      this.stop();
    }
  }

  /** Starts the worker once and waits until it is ready; false when it cannot run (every answer is then undefined). */
  private start(): boolean {
    if (this.broken) return false;
    try {
      if (!this.worker) this.spawn();
      if (!this.ready && !this.waitFor(READY, 1, START_TIMEOUT_MS)) throw new Error('the scope probe did not start');
      this.ready = true;
      return true;
    } catch {
      this.stop();
      return false;
    }
  }

  private spawn(): void {
    this.control = new Int32Array(new SharedArrayBuffer(8));
    this.worker = new Worker(path.join(__dirname, 'scope-probe-worker.js'), { workerData: { control: this.control } });
    this.worker.unref();
    this.worker.on('error', () => this.stop());
  }

  private stop(): void {
    this.broken = true;
    this.ready = false;
    void this.worker?.terminate();
    this.worker = null;
  }

  /** Waits until control[slot] is `value` (the worker writes -value for a failure). */
  private waitFor(slot: number, value: number, timeoutMs: number): boolean {
    const control = this.control!;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = Atomics.load(control, slot);
      if (now === value) return true;
      if (now === -value) return false;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.stop();
        return false;
      }
      Atomics.wait(control, slot, now, left);
    }
  }
}

/**
 * Calls the probed function, which the worker pauses at its entry and then drops by restarting this frame; the
 * second entry returns at once. Named so the worker finds it among the paused frames.
 */
function tslabRemoteScopeProbeCall(): void {
  const stash = (globalThis as unknown as Record<symbol, ProbeStash | undefined>)[PROBE_STASH];
  if (!stash || ++stash.entries > 1) return;
  const target = stash.target as () => unknown;
  target();
}

/** A function whose call pauses at its entry and whose caller's frame can be restarted: not async, not a generator, not a class. */
export function pausable(fn: Function): boolean {
  if (util.types.isAsyncFunction(fn) || util.types.isGeneratorFunction(fn)) return false;
  return !/^class\b/.test(Function.prototype.toString.call(fn));
}

let shared: ScopeProbe | null = null;

export function scopeProbe(): ScopeProbe {
  shared ??= new ScopeProbe();
  return shared;
}
