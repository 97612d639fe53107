// PickleError: what cannot travel, said before anything is sent. The message names the root, the path to the
// offending value and what to do: `f → captured cfg → .conn: net.Socket cannot be pickled (live handle); ...`.

/** A path as a linked list, so that queued work shares its prefix instead of copying arrays. */
export interface Path {
  readonly up: Path | null;
  readonly seg: string;
}

export function pathTo(up: Path | null, seg: string): Path {
  return { up, seg };
}

export function pathSegments(path: Path | null): string[] {
  const out: string[] = [];
  for (let p = path; p; p = p.up) out.push(p.seg);
  return out.reverse();
}

/** A property key as a path segment: `.name`, `["odd key"]`, `[Symbol(tag)]`, `[3]`. */
export function keySegment(key: string | symbol): string {
  if (typeof key === 'symbol') return `[${key.toString()}]`;
  if (/^(0|[1-9][0-9]*)$/.test(key)) return `[${key}]`;
  if (/^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*$/u.test(key)) return `.${key}`;
  return `[${JSON.stringify(key)}]`;
}

export class PickleError extends Error {
  /** The wire code the kernel reports this failure under. */
  readonly code = 'UNPICKLABLE';
  /** Root label, then one segment per step: ['f', 'captured cfg', '.conn']. */
  readonly path: string[];
  /** What cannot travel and why, without the path: 'net.Socket cannot be pickled (live handle)'. */
  readonly reason: string;

  constructor(path: string[], reason: string, hint?: string) {
    super(`${path.join(' → ')}: ${reason}${hint ? `. ${hint}` : ''}`);
    this.name = 'PickleError';
    this.path = path;
    this.reason = reason;
  }
}

/** Raised by unpickle when the frames are not a pickle it understands, or a reference cannot be resolved. */
export class UnpickleError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnpickleError';
  }
}
