// Which endpoints only this machine can reach: an agent there needs no keys.

/** Endpoints only this machine can reach: loopback TCP, inproc, and ipc socket files (guarded by file permissions). */
export function isLoopback(endpoint: string): boolean {
  // ipc://@name is a Linux abstract socket: it has no file, so no permissions, and any local user can connect.
  if (endpoint.startsWith('ipc://@')) return false;
  if (endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://')) return true;
  const match = /^tcp:\/\/(\[[^\]]+\]|[^:]+):/.exec(endpoint);
  if (!match) return false;
  const host = match[1]!;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
