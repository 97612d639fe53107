// The package a require request names, one rule for the kernel's unpickler and the agent's worker.

import * as path from 'node:path';

/** `lodash/fp` → `lodash`, `@scope/pkg/x` → `@scope/pkg`; null for relative, absolute and `node:` requests. */
export function packageName(request: string): string | null {
  if (request.startsWith('.') || path.isAbsolute(request) || request.startsWith('node:')) return null;
  const parts = request.split('/');
  if (request.startsWith('@')) return parts.length >= 2 ? `${parts[0]}/${parts[1]}` : null;
  return parts[0] || null;
}
