// Jupyter's wire format, as the run command's client needs it: a message is `<IDS|MSG>`, the HMAC-SHA256 of the
// four JSON parts, then header, parent header, metadata and content (jupyter_client's Session).

import { createHmac, timingSafeEqual } from 'node:crypto';

import type { Frame } from '../../protocol/frames';

const DELIM = '<IDS|MSG>';

export interface Message {
  header: { msg_id: string; msg_type: string; session: string; [key: string]: unknown };
  parent_header: { msg_id?: string; [key: string]: unknown };
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
}

/** A message the kernel sent that is not one (its signature checked out, its parts are not JSON objects). */
export class BadMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadMessageError';
  }
}

/** The frames of a message from this client. */
export function encodeJupyter(key: string, header: Message['header'], content: object): Frame[] {
  const parts = [header, {}, {}, content].map((part) => Buffer.from(JSON.stringify(part)));
  return [Buffer.from(DELIM), Buffer.from(sign(key, parts)), ...parts];
}

/**
 * A received message; undefined for frames that are not a signed message (as jupyter_client, such frames are
 * ignored: anyone on loopback may send them). Throws BadMessageError for a signed message whose parts do not parse.
 */
export function decodeJupyter(key: string, frames: readonly Buffer[]): Message | undefined {
  const at = frames.findIndex((frame) => frame.toString() === DELIM);
  if (at < 0 || frames.length < at + 6) return undefined;
  const parts = frames.slice(at + 2, at + 6);
  const expected = Buffer.from(sign(key, parts));
  const signature = frames[at + 1]!;
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return undefined;
  const [header, parent, metadata, content] = parts.map((part, i) => {
    let value: unknown;
    try {
      value = JSON.parse(part.toString());
    } catch (error) {
      throw new BadMessageError(
        `the kernel sent a message whose ${PART_NAMES[i]} is not JSON: ${(error as Error).message}`,
      );
    }
    if (typeof value !== 'object' || value === null)
      throw new BadMessageError(`the kernel sent a message whose ${PART_NAMES[i]} is not a JSON object`);
    return value as Record<string, unknown>;
  });
  const typed = header as Partial<Message['header']>;
  if (typeof typed.msg_type !== 'string')
    throw new BadMessageError('the kernel sent a message without a msg_type in its header');
  return {
    header: header as Message['header'],
    parent_header: parent as Message['parent_header'],
    metadata: metadata!,
    content: content!,
  };
}

const PART_NAMES = ['header', 'parent header', 'metadata', 'content'];

function sign(key: string, parts: readonly Buffer[]): string {
  const hmac = createHmac('sha256', key);
  for (const part of parts) hmac.update(part);
  return hmac.digest('hex');
}
