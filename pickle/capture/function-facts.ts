// What capture needs to know of a function that its source and the inspector do not say directly: whether an
// arrow is a class field of its holder, whether a method is written in its class's body, how to name it, and how
// frozen it is.

import { Integrity } from '../format';
import { ownConstructor } from '../object-shape';
import { analyzeSource } from './analyze';

const fnSource = (fn: Function): string => Function.prototype.toString.call(fn);

/**
 * The inspector does not show an arrow's lexical `this`; it is known only for a class-field arrow found on its own
 * instance (`onClick = () => this.n`), where `this` is that instance. Anywhere else (an array, a handler table, an
 * arrow a method returned) the holder is not its `this`, so the arrow is refused rather than given a wrong one.
 */
export function isFieldOf(fn: Function, source: string, owner: object | undefined): boolean {
  if (owner === undefined || Array.isArray(owner) || typeof owner !== 'object') return false;
  if (!Object.values(Object.getOwnPropertyDescriptors(owner)).some((desc) => desc.value === fn)) return false;
  for (
    let proto = Object.getPrototypeOf(owner) as object | null;
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto) as object | null
  ) {
    const ctor = ownConstructor(proto);
    if (ctor && /^class\b/.test(fnSource(ctor)) && fnSource(ctor).includes(source)) return true;
  }
  return false;
}

/** A method or accessor whose text lies inside the class's source: evaluating the class recreates it. */
export function isBodyMethod(classSource: string, fn: Function): boolean {
  const text = fnSource(fn);
  if (!classSource.includes(text)) return false;
  try {
    return analyzeSource(text).form === 'method';
  } catch {
    return true; // a private method's text: the class source recreates it
  }
}

export function describe(fn: Function): string {
  const source = fnSource(fn);
  const kind = /^class\b/.test(source) ? 'class' : 'function';
  return `${kind} ${fn.name || '(anonymous)'}`;
}

export function integrityOf(fn: Function): Integrity {
  if (Object.isExtensible(fn)) return Integrity.NONE;
  if (Object.isFrozen(fn)) return Integrity.FROZEN;
  if (Object.isSealed(fn)) return Integrity.SEALED;
  return Integrity.NON_EXTENSIBLE;
}
