// Facts about an object's shape that the encoder records: property attributes, integrity level, whether a
// prototype belongs to a constructor, array indices, a readable Map key for error paths.

import { DescFlags, Integrity } from './format';

/** A CommonJS `require` (or tslab's Proxy over one): it travels as the other side's require. */
export function isRequireFunction(fn: object): boolean {
  try {
    const candidate = fn as { resolve?: unknown; cache?: unknown };
    return typeof candidate.resolve === 'function' && candidate.cache === require.cache;
  } catch {
    return false;
  }
}

export function isIndex(name: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(name) && Number(name) < 2 ** 32 - 1;
}

export function describeKey(key: unknown): string {
  if (typeof key === 'string') return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
  if (typeof key === 'number' || typeof key === 'boolean' || typeof key === 'bigint') return String(key);
  if (typeof key === 'symbol') return key.toString();
  return '…';
}

export function descFlags(desc: PropertyDescriptor): number {
  return (
    (desc.enumerable ? DescFlags.ENUMERABLE : 0) |
    (desc.configurable ? DescFlags.CONFIGURABLE : 0) |
    (desc.writable ? DescFlags.WRITABLE : 0)
  );
}

export function integrity(obj: object): Integrity {
  if (Object.isExtensible(obj)) return Integrity.NONE;
  if (Object.isFrozen(obj)) return Integrity.FROZEN;
  if (Object.isSealed(obj)) return Integrity.SEALED;
  return Integrity.NON_EXTENSIBLE;
}

/** The constructor that owns `proto` as its `prototype`, when `proto` is a class or constructor prototype. */
export function ownConstructor(proto: object): Function | undefined {
  const desc = Object.getOwnPropertyDescriptor(proto, 'constructor');
  const ctor = desc && 'value' in desc ? (desc.value as unknown) : undefined;
  if (typeof ctor !== 'function') return undefined;
  const own = Object.getOwnPropertyDescriptor(ctor, 'prototype');
  return own && own.value === proto ? ctor : undefined;
}
