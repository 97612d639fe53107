// Display output made on the agent through tslab's display API (`tslab.display.html(...)`, `newDisplay()`), shown in
// the cell. The worker sends each display as its own message, in order with the job's text (protocol `display`,
// docs/protocol.md); what a job prints is only ever text.
//
// Worker side: `installRemoteDisplay` is pickled with every remote call that may display and runs first on the
// worker. When the agent can load tslab (the package the notebook's `import * as tslab from "tslab"` refers to), it
// points tslab's `lastWriteDisplayData` (what the display API writes to) at the worker's display hook
// (remote-agent/worker/display-hook.ts). Without tslab on the agent nothing changes: code that does not display does
// not need it.

import type { DisplayContent } from '../../protocol/messages';
import type { CellIO } from './io';

/** Runs on the worker (pickled by value): self-contained on purpose, it may use only globals and `require`. */
export function installRemoteDisplay(): void {
  const g = globalThis as unknown as Record<symbol, unknown>;
  const installed = Symbol.for('tslab-remote.display-installed');
  const hook = g[Symbol.for('tslab-remote.display')];
  if (g[installed] || typeof hook !== 'function') return;
  g[installed] = true;
  let jupyter: { lastWriteDisplayData: unknown } | undefined;
  try {
    jupyter = require('tslab/dist/jupyter') as { lastWriteDisplayData: unknown };
  } catch {
    return; // tslab is not installed on the agent: nothing in the job can display through it either
  }
  jupyter.lastWriteDisplayData = hook;
}

/** The display shim as a function of no module (pickled by value: its source and nothing else). */
const INSTALL_DISPLAY = (0, eval)(`(${installRemoteDisplay.toString()})`) as () => void;

/** The call's function, run after the display shim when the call may display (see mayDisplay). */
export function withDisplay(fn: () => unknown, source: string, locals: Record<string, unknown>): () => unknown {
  if (!mayDisplay(source, locals)) return fn;
  const install = INSTALL_DISPLAY;
  return function tslabRemoteEntry() {
    install();
    return fn();
  };
}

/** tslab's display API as the notebook sees it (`require('tslab')` in a cell is this module). */
const TSLAB_PUBLIC = require('tslab') as { display: unknown; newDisplay: unknown };

/**
 * Whether the call may display through tslab: its source names tslab, or the notebook holds tslab's module or its
 * display functions (a captured `tslab.display...`). Only then does the display shim travel with the call: it costs
 * a little on every call, and calls that cannot reach tslab do not need it.
 */
export function mayDisplay(source: string, locals: Record<string, unknown>): boolean {
  if (/\btslab\b/.test(source)) return true;
  for (const key of Object.keys(locals)) {
    const value = locals[key];
    if (value === TSLAB_PUBLIC || value === TSLAB_PUBLIC.display || value === TSLAB_PUBLIC.newDisplay) return true;
  }
  return false;
}

/** Shows the agent's displays in the cell. */
export function showIn(io: CellIO): (display: DisplayContent) => void {
  return ({ data, metadata, displayId, update }) =>
    io.display({ data, metadata, ...(displayId === null ? {} : { transient: { display_id: displayId } }) }, update);
}
