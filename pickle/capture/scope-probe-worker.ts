// The debugger half of scope-probe.ts, in a worker thread with a session on the main thread. Armed by a message
// (the probe's sequence number), it sets a breakpoint on the probed function's call and lets pauses through; when
// the function pauses at its entry, it writes the marker into the scope variable, asks the other function's scope
// whether it holds the marker, writes the old value back and restarts the caller's frame, so the paused function's
// body never runs. It answers through the shared control array: READY, then ARMED per probe (negative: failed).
// The debugger is on from the first probe of a pickle until the pickle is done ('release').

import * as inspector from 'node:inspector';
import { parentPort, workerData } from 'node:worker_threads';

import { PROBE_CALLER } from './scope-probe';

const READY = 0;
const ARMED = 1;
const STASH = 'globalThis[Symbol.for("tslab-remote.scope-probe")]';

interface RemoteObject {
  type: string;
  value?: unknown;
  unserializableValue?: string;
  objectId?: string;
}

interface CallFrame {
  callFrameId: string;
  functionName: string;
  scopeChain: { type: string }[];
}

interface Settings {
  scopeIndex: number;
  scopeCount: number;
  scopeType: string;
  names: string[];
  otherIndexes: number[];
}

const control = (workerData as { control: Int32Array }).control;
const session = new inspector.Session();
session.connectToMainThread();

function post<T = unknown>(method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

function signal(slot: number, value: number): void {
  Atomics.store(control, slot, value);
  Atomics.notify(control, slot);
}

let breakpointId: string | null = null;
let enabled = false;

async function arm(seq: number): Promise<void> {
  try {
    if (!enabled) {
      await post('Debugger.enable');
      enabled = true;
    }
    const { result } = await post<{ result: RemoteObject }>('Runtime.evaluate', {
      expression: `${STASH}.target`,
      silent: true,
    });
    if (!result.objectId) throw new Error('no probe target');
    ({ breakpointId } = await post<{ breakpointId: string }>('Debugger.setBreakpointOnFunctionCall', {
      objectId: result.objectId,
    }));
    signal(ARMED, seq);
  } catch {
    await disarm();
    signal(ARMED, -seq);
  }
}

async function disarm(): Promise<void> {
  const id = breakpointId;
  breakpointId = null;
  if (id) await post('Debugger.removeBreakpoint', { breakpointId: id }).catch(() => undefined);
}

async function onPaused(frames: CallFrame[], hit: string[]): Promise<void> {
  if (!breakpointId || !hit.includes(breakpointId)) {
    await post('Debugger.resume').catch(() => undefined);
    return;
  }
  let result: number | 'immutable' | undefined;
  try {
    result = await probe(frames[0]!);
  } finally {
    await disarm();
    if (result !== undefined) await setResult(result).catch(() => undefined);
    const caller = frames.find((frame) => frame.functionName === PROBE_CALLER);
    // Restarting the caller drops the paused call, so the probed function's body never runs.
    if (!caller) await post('Debugger.resume').catch(() => undefined);
    else
      await post('Debugger.restartFrame', { callFrameId: caller.callFrameId, mode: 'StepInto' }).catch(() =>
        post('Debugger.resume').catch(() => undefined),
      );
  }
}

async function probe(frame: CallFrame): Promise<number | 'immutable' | undefined> {
  const settings = (
    await post<{ result: RemoteObject }>('Runtime.evaluate', {
      expression: `(({ scopeIndex, scopeCount, scopeType, names, otherIndexes }) => ({ scopeIndex, scopeCount, scopeType, names, otherIndexes }))(${STASH})`,
      returnByValue: true,
      silent: true,
    })
  ).result.value as Settings;
  const chain = frame.scopeChain.filter((scope) => scope.type !== 'global');
  const scopeNumber = chain.length - settings.scopeCount + settings.scopeIndex;
  if (chain.length < settings.scopeCount || frame.scopeChain[scopeNumber]?.type !== settings.scopeType.toLowerCase())
    return undefined;
  const ids = await objectIds(`[${STASH}.marker, ...${STASH}.originals, ...${STASH}.others]`);
  const marker = ids[0]!;
  const originals = ids.slice(1, 1 + settings.names.length);
  const others = ids.slice(1 + settings.names.length);
  for (let i = 0; i < settings.names.length; i++) {
    const variableName = settings.names[i]!;
    try {
      await post('Debugger.setVariableValue', {
        scopeNumber,
        variableName,
        newValue: marker,
        callFrameId: frame.callFrameId,
      });
    } catch {
      continue; // a const cannot be written: try the next binding
    }
    try {
      for (let k = 0; k < others.length; k++) {
        // Listed after the write: the inspector copies a scope's bindings when it lists the scopes.
        const { result } = await post<{ result: RemoteObject }>('Runtime.callFunctionOn', {
          objectId: await scopesOf(others[k]!),
          functionDeclaration:
            'function (i, name, marker) { try { return this[i].object[name] === marker; } catch { return false; } }',
          arguments: [{ value: settings.otherIndexes[k] }, { value: variableName }, marker],
          returnByValue: true,
          silent: true,
        });
        if (result.value === true) return k;
      }
      return -1;
    } finally {
      await post('Debugger.setVariableValue', {
        scopeNumber,
        variableName,
        newValue: originals[i],
        callFrameId: frame.callFrameId,
      });
    }
  }
  return 'immutable';
}

/** Call arguments for the elements of an array expression evaluated on the main thread. */
async function objectIds(expression: string): Promise<object[]> {
  const { result } = await post<{ result: RemoteObject }>('Runtime.evaluate', { expression, silent: true });
  const { result: props } = await post<{ result: { name: string; value?: RemoteObject }[] }>('Runtime.getProperties', {
    objectId: result.objectId,
    ownProperties: true,
  });
  return props.filter((p) => /^\d+$/.test(p.name)).map((p) => callArgument(p.value));
}

function callArgument(remote: RemoteObject | undefined): object {
  if (!remote || remote.type === 'undefined') return {};
  if (remote.objectId) return { objectId: remote.objectId };
  if (remote.unserializableValue !== undefined) return { unserializableValue: remote.unserializableValue };
  return { value: remote.value };
}

async function scopesOf(fn: object): Promise<string> {
  const { objectId } = fn as { objectId: string };
  const props = await post<{ internalProperties?: { name: string; value?: RemoteObject }[] }>('Runtime.getProperties', {
    objectId,
    ownProperties: true,
  });
  const list = props.internalProperties?.find((p) => p.name === '[[Scopes]]')?.value?.objectId;
  if (!list) throw new Error('no scopes');
  return list;
}

async function setResult(result: number | 'immutable'): Promise<void> {
  await post('Runtime.evaluate', { expression: `${STASH}.result = ${JSON.stringify(result)}`, silent: true });
}

session.on('Debugger.paused', (message: { params: { callFrames: CallFrame[]; hitBreakpoints?: string[] } }) => {
  void onPaused(message.params.callFrames, message.params.hitBreakpoints ?? []);
});
/** Off between pickles: while the debugger is on, every script the main thread compiles is reported here. */
async function release(): Promise<void> {
  if (!enabled || breakpointId) return;
  enabled = false;
  await post('Debugger.disable').catch(() => undefined);
}

parentPort!.on('message', (message: number | 'release') => void (message === 'release' ? release() : arm(message)));
signal(READY, 1);
