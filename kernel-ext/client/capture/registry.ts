// The kernel's registry of what it pickled by value: each function, class and unique symbol gets a stable id the
// first time it travels (`<process nonce>:<n>`), and the worker's result pickler sends such values (and instances
// of such classes) back as that id. Pass `localRegistry` as UnpickleContext.localClasses when unpickling results.
// Functions and classes are held weakly: a class the notebook redefined and dropped can be collected, and a result
// that still names it fails with a clear UnpickleError.

import { randomBytes } from 'node:crypto';

export class LocalRegistry {
  private readonly nonce = randomBytes(4).toString('hex');
  private next = 1;
  private readonly objectIds = new WeakMap<object, string>();
  private readonly symbolIds = new Map<symbol, string>();
  private readonly byId = new Map<string, WeakRef<object> | symbol>();
  private readonly cleanup = new FinalizationRegistry<string>((id) => this.byId.delete(id));

  /** The id of `value`, assigned on first use. */
  idFor(value: object | symbol): string {
    const known = typeof value === 'symbol' ? this.symbolIds.get(value) : this.objectIds.get(value);
    if (known) return known;
    const id = `${this.nonce}:${this.next++}`;
    if (typeof value === 'symbol') {
      this.symbolIds.set(value, id);
      this.byId.set(id, value);
    } else {
      this.objectIds.set(value, id);
      this.byId.set(id, new WeakRef(value));
      this.cleanup.register(value, id);
    }
    return id;
  }

  get(id: string): unknown {
    const entry = this.byId.get(id);
    if (entry === undefined) return undefined;
    return typeof entry === 'symbol' ? entry : entry.deref();
  }
}

/** The registry of this kernel process. */
export const localRegistry = new LocalRegistry();
