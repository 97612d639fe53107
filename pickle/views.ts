// Typed arrays, DataViews, Buffers and their ArrayBuffers, both ways (see format.ts: ARRAYBUFFER and VIEW).
//
// A view is a VIEW node that names an ARRAYBUFFER node, so views that shared one ArrayBuffer share one after the
// trip, at the same distances from each other. Only the part of a buffer that the pickled graph reaches travels:
// the span from the lowest view start to the highest view end (the whole buffer when the ArrayBuffer itself is
// reached). A lone Float32Array(4) therefore arrives at offset 0 of a 16-byte buffer, and a small Buffer cut from
// Node's pool (or a view over a received message) never carries its neighbours' bytes. The span travels as one
// Uint8Array over the original memory, out of band when large, so big arrays are not copied.

import { isBufferConstructor, viewConstructor, viewTypeIndex } from '../protocol/values';
import { UnpickleError } from './errors';
import { Kind, Node } from './format';

interface BufferSpan {
  node: Node;
  start: number;
  end: number;
  views: Node[];
}

/** Encoder side: collects the views of each ArrayBuffer, then sets each buffer node's bytes in finish(). */
export class ViewEncoder {
  private readonly spans = new Map<ArrayBuffer, BufferSpan>();

  /** The ARRAYBUFFER node of `buffer` (new ones are returned for the caller to add to the table), widened to [start, end). */
  span(buffer: ArrayBuffer, start: number, end: number): { node: Node; isNew: boolean } {
    let span = this.spans.get(buffer);
    const isNew = span === undefined;
    if (!span) {
      span = { node: [Kind.ARRAYBUFFER, undefined], start, end, views: [] };
      this.spans.set(buffer, span);
    }
    span.start = Math.min(span.start, start);
    span.end = Math.max(span.end, end);
    return { node: span.node, isNew };
  }

  /** The VIEW node of `view` over the buffer node `bufferSlot` (its offset is made relative in finish()). */
  view(view: ArrayBufferView, bufferSlot: unknown): Node {
    const node: Node = [
      Kind.VIEW,
      bufferSlot,
      viewTypeIndex(view),
      view.byteOffset,
      view instanceof DataView ? view.byteLength : (view as unknown as { length: number }).length,
    ];
    this.spans.get(view.buffer as ArrayBuffer)!.views.push(node);
    return node;
  }

  /** Sets each buffer node's bytes to its span and each view's offset relative to the span. */
  finish(): void {
    for (const [buffer, span] of this.spans) {
      // Views must stay aligned to their element size: when one would not be, start the copy at the span's start
      // modulo 8, which keeps every offset's alignment as it was in the original buffer.
      const pad = span.views.some((view) => misaligned(view, span.start)) ? span.start % 8 : 0;
      const length = span.end - span.start;
      let bytes = new Uint8Array(buffer, span.start, length);
      if (pad > 0) {
        const copy = new Uint8Array(length + pad); // the padding bytes are zeros, never the neighbours' bytes
        copy.set(bytes, pad);
        bytes = copy;
      }
      span.node[1] = bytes;
      for (const view of span.views) view[3] = (view[3] as number) - span.start + pad;
    }
  }
}

function misaligned(view: Node, start: number): boolean {
  const size = viewConstructor(view[2] as number)?.BYTES_PER_ELEMENT ?? 1;
  return ((view[3] as number) - start) % size !== 0;
}

/** Decoder side: the ArrayBuffer of an ARRAYBUFFER node, at offset 0 and of exactly the bytes' size. */
export function bufferOf(bytes: unknown): ArrayBuffer {
  if (!(bytes instanceof Uint8Array)) throw new UnpickleError('corrupt pickle: an ArrayBuffer node without bytes');
  const whole =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
  return whole ? bytes.buffer : bytes.slice().buffer;
}

/** Decoder side: the view of a VIEW node over its (already created) buffer. */
export function viewOf(node: Node, buffer: unknown): ArrayBufferView {
  const ctor = viewConstructor(node[2] as number);
  if (!ctor || !(buffer instanceof ArrayBuffer))
    throw new UnpickleError('corrupt pickle: a view of an unknown type or without a buffer');
  const offset = node[3] as number;
  const length = node[4] as number;
  if (isBufferConstructor(ctor)) return Buffer.from(buffer, offset, length);
  return new ctor(buffer, offset, length);
}
