// Shell requests tslab does not know, answered as the messaging spec says for a kernel that keeps no history and
// has no comm targets, instead of tslab's "unknown msg_type" warning (which lands in the running cell's stderr):
//
//   - history_request: an empty history (`status: ok`), as a kernel that stores none.
//   - comm_info_request: no comms, as a `comm_info_reply` (tslab answers it as a `complete_reply`).
//   - comm_open: no target of that name, so the comm is closed at once (comm_close on iopub), as the spec asks.
//   - comm_msg, comm_close: no comm is ever open here; they have no reply.
//
// tslab does not export its message class, so these few messages are read and signed here, as the wire spec says.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const DELIM = Buffer.from('<IDS|MSG>');
export const QUIET_TYPES = new Set(['history_request', 'comm_info_request', 'comm_open', 'comm_msg', 'comm_close']);

interface Header {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  [key: string]: unknown;
}

interface Socket {
  send(frames: unknown): unknown;
}

/** The msg_type of a raw shell message, without checking anything: to route it. */
export function peekType(frames: Buffer[]): string | undefined {
  const at = frames.findIndex((frame) => frame.equals(DELIM));
  try {
    return at < 0 ? undefined : (JSON.parse(frames[at + 2]!.toString()) as Header).msg_type;
  } catch {
    return undefined;
  }
}

/** Answers one of QUIET_TYPES, between busy and idle as every request is. Unsigned or malformed: dropped. */
export function answerQuietly(key: string, frames: Buffer[], shell: Socket, iopub: Socket): void {
  const at = frames.findIndex((frame) => frame.equals(DELIM));
  if (at < 0 || frames.length < at + 6) return;
  const identities = frames.slice(0, at);
  const parts = frames.slice(at + 2, at + 6);
  if (!signatureMatches(key, frames[at + 1]!.toString(), parts)) return;
  const header = JSON.parse(parts[0]!.toString()) as Header;
  const content = JSON.parse(parts[3]!.toString()) as Record<string, unknown>;
  const send = (socket: Socket, ids: Buffer[], msgType: string, body: object): void => {
    const reply = {
      version: '5.3',
      date: new Date().toISOString(),
      session: header.session,
      username: header.username,
      msg_type: msgType,
    };
    const bodies = [{ ...reply, msg_id: randomId() }, header, {}, body].map((part) => JSON.stringify(part));
    socket.send([...ids, DELIM, sign(key, bodies), ...bodies]);
  };
  send(iopub, [], 'status', { execution_state: 'busy' });
  if (header.msg_type === 'history_request') send(shell, identities, 'history_reply', { status: 'ok', history: [] });
  if (header.msg_type === 'comm_info_request') send(shell, identities, 'comm_info_reply', { status: 'ok', comms: {} });
  if (header.msg_type === 'comm_open') send(iopub, [], 'comm_close', { comm_id: content.comm_id, data: {} });
  send(iopub, [], 'status', { execution_state: 'idle' });
}

function sign(key: string, bodies: Array<string | Buffer>): string {
  const hmac = createHmac('sha256', key);
  for (const body of bodies) hmac.update(body);
  return hmac.digest('hex');
}

function signatureMatches(key: string, signature: string, parts: Buffer[]): boolean {
  if (!key) return true; // an empty key: the connection file turned signing off
  const want = Buffer.from(sign(key, parts));
  const got = Buffer.from(signature);
  return got.length === want.length && timingSafeEqual(got, want);
}

function randomId(): string {
  return randomBytes(16).toString('hex');
}
