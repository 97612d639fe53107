// A failed magic as the cell's error: name, message, a hint for what to do, and a remote stack mapped to cells and
// the user's files.

import { AbortError } from '../client/abort';
import { pickleCall, requireLoaded } from '../client/capture';
import { SnapshotError } from '../client/snapshot';
import { RemoteError } from '../../protocol/errors';
import { PickleError, unpickle } from '../../pickle';
import type { Agent } from './agents';
import { plainText } from './display';
import { CellFailure } from './io';
import type { CellInterrupt } from './interrupt';
import { CellHistory } from './cell-history';
import { mapRemoteStack, recoverProgram } from './stack-map';

/** The kernel's entry wrapper and the display shim: their frames are not the user's. */
export const OWN_FUNCTIONS = new Set(['tslabRemoteEntry', 'installRemoteDisplay']);

/** The call that failed, as far as it got. */
export interface FailedCall {
  entry: () => unknown;
  /** Whether `entry` wraps the cell's function (the display shim). */
  wrapped: boolean;
  root?: string;
  locals: Record<string, unknown>;
  history: CellHistory;
  notebookDir: string;
}

export interface FailureContext {
  call?: FailedCall;
  agent?: Agent;
  cell?: CellInterrupt;
}

/** Any failure of a magic as the cell's error. */
export function cellFailure(error: unknown, where: FailureContext): CellFailure {
  if (error instanceof CellFailure) return error;
  // The call's own abort: the interrupt came after the last check, while it was pickled, and it was not sent.
  if (error instanceof AbortError && where.cell?.signal.aborted) return where.cell.error('the call was pickled');
  if (error instanceof RemoteError) return remoteFailure(error, where);
  if (error instanceof PickleError) {
    // With the display wrapper the path passes through it (`the cell → captured fn → ...`): leave that step out.
    const own = error.path.slice(0, 2).join(' → ');
    const message =
      where.call?.wrapped && error.path[1] === 'captured fn' && error.message.startsWith(own)
        ? `${[error.path[0], ...error.path.slice(2)].join(' → ')}${error.message.slice(own.length)}`
        : error.message;
    return new CellFailure({
      ename: 'PickleError',
      evalue: message,
      traceback: [`PickleError: ${message}`, 'Nothing was sent to the agent.'],
    });
  }
  if (error instanceof SnapshotError) {
    return new CellFailure({
      ename: 'SnapshotError',
      evalue: error.message,
      traceback: [`SnapshotError: ${error.message}`],
    });
  }
  const err = error instanceof Error ? error : new Error(String(error));
  return new CellFailure({ ename: err.name, evalue: err.message, traceback: [`${err.name}: ${err.message}`] });
}

function remoteFailure(error: RemoteError, where: FailureContext): CellFailure {
  const call = where.call;
  if (error.code === 'REMOTE_EXCEPTION' && call) {
    let program: string | undefined | null = null;
    const mapper = {
      history: call.history,
      ownFunctions: OWN_FUNCTIONS,
      program: () => {
        if (program === null) program = recoverCallProgram(call);
        return program;
      },
    };
    return new CellFailure(remoteExceptionError(error, (stack) => mapRemoteStack(stack, mapper)));
  }
  const agentName = !where.agent
    ? 'the agent'
    : where.agent.private
      ? 'this machine, where the private agent runs'
      : where.agent.name;
  const hint = ERROR_HINTS[error.code]?.(agentName);
  const ename = error.code === 'CANCELLED' && where.cell?.signal.aborted ? 'KeyboardInterrupt' : error.name;
  return new CellFailure({
    ename,
    evalue: error.message,
    traceback: [`${ename}: ${error.message}`, ...(hint ? [hint] : [])],
  });
}

const ERROR_HINTS: Partial<Record<string, (agent: string) => string>> = {
  AGENT_UNREACHABLE: (agent) =>
    `The kernel is fine: start or reach ${agent} again (see %remote_agent), then run the cell again.`,
  AGENT_RESTARTED: () => 'The agent restarted and lost the call; run the cell again.',
  WORKER_CRASHED: () =>
    'The worker process ended (it was restarted); module state on it was lost. If the code ended it (process.exit, ' +
    'process.abort, a native crash), running the cell again ends it again: return or throw instead.',
  // MODULE_NOT_INSTALLED: the agent's message already says where and how to install the package.
  TIMEOUT: () => 'Give it more time with %remote --timeout SECONDS.',
  AUTH_FAILED: () => 'Check the key directory given to %remote_agent --key (kernel.key, kernel.pub, agent.pub).',
  CANCELLED: () =>
    'The call was cancelled on the agent (the message says whether its worker kept its state); the next call works.',
};

function remoteExceptionError(
  error: RemoteError,
  mapStack: (stack: string) => string,
): { ename: string; evalue: string; traceback: string[] } {
  const lines: string[] = [];
  let depth = 0;
  for (
    let e: RemoteError | undefined = error;
    e && depth < 8;
    e = e.cause instanceof RemoteError ? e.cause : undefined, depth++
  ) {
    const head = `${e.remoteName}: ${e.message}`;
    const frames = (e.remoteStack ?? '')
      .split('\n')
      .filter((line) => /^\s+at /.test(line))
      .join('\n');
    const mapped = frames ? mapStack(frames) : '';
    lines.push(...(depth > 0 ? [`Caused by: ${head}`] : [head]), ...(mapped ? mapped.split('\n') : []));
    if (depth === 0 && Object.keys(e.props).length > 0)
      lines.push(`  properties: ${plainText(e.props).replace(/\n/g, '\n  ')}`);
  }
  return { ename: error.remoteName, evalue: error.message, traceback: lines };
}

/** The call's generated program, from a fresh pickle of the same call (see stack-map.ts). */
function recoverCallProgram(call: FailedCall): string | undefined {
  const { entry, locals, root, notebookDir } = call;
  try {
    const frames = pickleCall(entry, [], { locals, ...(root !== undefined ? { codeRoot: root } : {}) });
    return recoverProgram((onProgram) =>
      unpickle(frames, { requireModule: requireLoaded(root ?? notebookDir), onProgram }),
    );
  } catch {
    return undefined;
  }
}
