// Rich output from a job. tslab's display API (`tslab.display.html(...)`, `newDisplay()`) writes each display to
// `lastWriteDisplayData`; the kernel points that at this hook on the worker (kernel-ext/kernel/display-relay.ts), and
// the hook sends the display as its own message, after the text the job printed before it. A job's stdout stays
// text: nothing it prints can pass for a display.

import type { DisplayContent } from '../../protocol/messages';

/** `globalThis[DISPLAY_HOOK](message, update)`: what tslab's `lastWriteDisplayData` is pointed at on the worker. */
export const DISPLAY_HOOK = Symbol.for('tslab-remote.display');

export function installDisplayHook(send: (content: DisplayContent) => void): void {
  Object.defineProperty(globalThis, DISPLAY_HOOK, {
    value: (message: unknown, update: unknown) => send(displayContent(message, update)),
    enumerable: false,
  });
}

type Obj = Record<string, unknown>;
const isObject = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * tslab's display message ({data, metadata, transient: {display_id}}) as the wire's display content. tslab builds it,
 * but user code can call the hook too: what is not of the right shape becomes empty, and what the wire would
 * refuse throws here, to the caller.
 */
export function displayContent(message: unknown, update: unknown): DisplayContent {
  const m = isObject(message) ? message : {};
  const id = isObject(m.transient) ? m.transient.display_id : undefined;
  return {
    data: isObject(m.data) ? m.data : {},
    metadata: isObject(m.metadata) ? m.metadata : {},
    displayId: typeof id === 'string' && id.length > 0 ? displayId(id) : null,
    update: update === true,
  };
}

function displayId(id: string): string {
  if (id.length > 256) throw new RangeError(`a display id is at most 256 characters; this one has ${id.length}`);
  return id;
}
