// Origins: functions, classes and unique symbols that a side received by value remember the id the pickling side
// gave them. When such a value (or an instance of such a class) is pickled back, it travels as that id, and the
// side that first pickled it resolves the id to its own original: an instance of a notebook class comes back as an
// instance of the notebook's class, a returned function is the notebook's function.

const objects = new WeakMap<object, string>();
const symbols = new Map<symbol, string>();

export function recordOrigin(value: object | symbol, id: string): void {
  if (typeof value === 'symbol') symbols.set(value, id);
  else objects.set(value, id);
}

export function originOf(value: unknown): string | undefined {
  if (typeof value === 'symbol') return symbols.get(value);
  if ((typeof value === 'object' && value !== null) || typeof value === 'function') return objects.get(value);
  return undefined;
}
