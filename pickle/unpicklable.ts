// What cannot travel, recognized before anything is sent: live handles (sockets, streams, servers, child processes,
// timers, file handles), promises, weak collections, proxies, suspended iterators and generators, shared memory.
// Each answer is the reason and the hint of a PickleError.

import Module = require('node:module');
import * as util from 'node:util';

export interface Refusal {
  reason: string;
  hint: string;
}

const HANDLE_HINT = 'Open or create it inside the remote function instead (it is bound to this process)';

/** Builtin classes whose instances are live handles, from the builtin modules this process has loaded. */
function handleClasses(): [Function, string][] {
  const list = (process as unknown as { moduleLoadList?: string[] }).moduleLoadList ?? [];
  const loaded = new Set(list.filter((e) => e.startsWith('NativeModule ')).map((e) => e.slice('NativeModule '.length)));
  const out: [Function, string][] = [];
  const take = (module: string, names: string[]): void => {
    if (!loaded.has(module) || !Module.isBuiltin(module)) return;
    let exports: Record<string, unknown>;
    try {
      exports = require(module) as Record<string, unknown>;
    } catch {
      return;
    }
    for (const name of names) {
      const value = exports[name];
      if (typeof value === 'function') out.push([value, `${module}.${name}`]);
    }
  };
  // Most specific first: the first match names the value.
  take('tls', ['TLSSocket', 'Server']);
  take('https', ['Server', 'Agent']);
  take('http', ['Server', 'ClientRequest', 'IncomingMessage', 'ServerResponse', 'Agent']);
  take('http2', ['Http2ServerRequest', 'Http2ServerResponse']);
  take('net', ['Socket', 'Server']);
  take('dgram', ['Socket']);
  take('fs', ['ReadStream', 'WriteStream', 'FSWatcher', 'StatWatcher', 'Dir']);
  take('zlib', [
    'Gzip',
    'Gunzip',
    'Deflate',
    'Inflate',
    'DeflateRaw',
    'InflateRaw',
    'Unzip',
    'BrotliCompress',
    'BrotliDecompress',
  ]);
  take('child_process', ['ChildProcess']);
  take('worker_threads', ['Worker', 'MessagePort', 'MessageChannel', 'BroadcastChannel']);
  take('readline', ['Interface']);
  take('repl', ['REPLServer']);
  take('cluster', ['Worker']);
  take('stream', ['Stream']);
  return out;
}

let classes: [Function, string][] | null = null;
let classesFor = -1;

function knownHandle(value: object): string | null {
  const loadCount = ((process as unknown as { moduleLoadList?: string[] }).moduleLoadList ?? []).length;
  if (!classes || classesFor !== loadCount) {
    classes = handleClasses();
    classesFor = loadCount;
  }
  for (const [ctor, name] of classes) {
    if (value instanceof (ctor as new () => unknown)) {
      // A stream that is none of the named ones: say which class it is.
      if (name === 'stream.Stream') return `${constructorName(value) ?? 'stream'} (a stream)`;
      return name;
    }
  }
  const name = constructorName(value);
  if (name === 'Timeout' && '_onTimeout' in value) return 'a timer (setTimeout/setInterval)';
  if (name === 'Immediate' && '_onImmediate' in value) return 'an immediate (setImmediate)';
  if (name === 'FileHandle' && typeof (value as { fd?: unknown }).fd === 'number') return 'fs.promises.FileHandle';
  if (typeof EventTarget === 'function' && value instanceof EventTarget)
    return `${name ?? 'EventTarget'} (an EventTarget)`;
  return null;
}

function constructorName(value: object): string | undefined {
  try {
    const ctor = (value as { constructor?: unknown }).constructor;
    return typeof ctor === 'function' && ctor.name ? ctor.name : undefined;
  } catch {
    return undefined;
  }
}

/** Why `value` (an object or function) cannot be pickled at all, or null when it may be. */
export function refuse(value: object): Refusal | null {
  const t = util.types;
  if (t.isProxy(value))
    return { reason: 'a Proxy cannot be pickled (its handler runs here)', hint: 'Pass the target object instead' };
  if (typeof value === 'function') return null;
  if (t.isPromise(value))
    return { reason: 'a Promise cannot be pickled', hint: 'Await it before the call and pass the result' };
  if (t.isWeakMap(value) || t.isWeakSet(value)) {
    return {
      reason: `a ${t.isWeakMap(value) ? 'WeakMap' : 'WeakSet'} cannot be pickled (its entries cannot be enumerated)`,
      hint: 'Use a Map or Set, or create it inside the remote function',
    };
  }
  if (typeof WeakRef === 'function' && value instanceof WeakRef)
    return { reason: 'a WeakRef cannot be pickled', hint: 'Pass the referenced object instead' };
  if (typeof FinalizationRegistry === 'function' && value instanceof FinalizationRegistry) {
    return { reason: 'a FinalizationRegistry cannot be pickled', hint: 'Create it inside the remote function' };
  }
  if (t.isGeneratorObject(value) || t.isMapIterator(value) || t.isSetIterator(value)) {
    return {
      reason: 'a suspended iterator or generator cannot be pickled',
      hint: 'Collect its values into an array first (Array.from)',
    };
  }
  if (t.isSharedArrayBuffer(value))
    return {
      reason: 'a SharedArrayBuffer cannot be pickled (shared memory)',
      hint: 'Copy it into an ArrayBuffer or typed array',
    };
  if (t.isModuleNamespaceObject(value)) {
    return {
      reason: 'an ES module namespace cannot be pickled',
      hint: 'Import the module with require (or a CommonJS import) so it travels as a module reference',
    };
  }
  if (t.isExternal(value)) return { reason: 'a native External value cannot be pickled', hint: HANDLE_HINT };
  if (t.isKeyObject(value) || t.isCryptoKey(value)) {
    return {
      reason: 'a crypto key object cannot be pickled',
      hint: 'Export the key (key.export()) and import it inside the remote function',
    };
  }
  const handle = knownHandle(value);
  if (handle) return { reason: `${handle} cannot be pickled (live handle)`, hint: HANDLE_HINT };
  return null;
}

/** A function whose source is `[native code]`: built-ins, bound functions, host functions. */
export function isNativeSource(source: string): boolean {
  return /\{\s*\[native code\]\s*\}$/.test(source);
}
