// The value serializer: Node's structured clone (v8.Serializer: cycles, shared references, Map, Set, Date,
// RegExp, BigInt, typed arrays, Error) with one extension: typed arrays, DataViews and Buffers at or above a
// threshold travel out of band, each as its own ZeroMQ frame, so hundreds of megabytes are never copied into the
// body. Encoded form: [body, ...buffers]; the body refers to buffers by index.
//
// A received ZeroMQ frame is its own ArrayBuffer at offset 0, so decoding views it in place (no copy) whenever the
// element alignment allows.

import * as v8 from 'node:v8';

export const DEFAULT_OUT_OF_BAND_BYTES = 64 * 1024;

const IN_BAND = 0;
const OUT_OF_BAND = 1;

export type ViewConstructor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayBufferView;
  BYTES_PER_ELEMENT?: number;
};

// Index on the wire → constructor. Append only: the index is part of the format.
const VIEW_TYPES: readonly ViewConstructor[] = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
  Buffer,
];

/** The wire index of a view's type (a typed-array subclass: its nearest built-in base); the pickle format uses it too. */
export function viewTypeIndex(view: ArrayBufferView): number {
  if (Buffer.isBuffer(view)) return VIEW_TYPES.length - 1;
  const index = VIEW_TYPES.findIndex((ctor) => view.constructor === ctor);
  if (index >= 0) return index;
  // A subclass of a typed array: travel as its nearest built-in base.
  return VIEW_TYPES.findIndex((ctor) => view instanceof (ctor as unknown as Function));
}

/** The view type of a wire index, or undefined for an index this side does not know. */
export function viewConstructor(index: number): ViewConstructor | undefined {
  return VIEW_TYPES[index];
}

export function isBufferConstructor(ctor: ViewConstructor): boolean {
  return ctor === (Buffer as unknown as ViewConstructor);
}

// Node implements these hooks but its typings omit them.
const SerializerBase = v8.DefaultSerializer as unknown as new () => v8.DefaultSerializer & {
  _writeHostObject(object: object): void;
};
const DeserializerBase = v8.DefaultDeserializer as unknown as new (
  body: Buffer,
) => v8.DefaultDeserializer & { _readHostObject(): unknown };

class OutOfBandSerializer extends SerializerBase {
  readonly buffers: Uint8Array[] = [];

  constructor(private readonly threshold: number) {
    super();
  }

  override _writeHostObject(object: object): void {
    const view = object as ArrayBufferView;
    if (ArrayBuffer.isView(view) && view.byteLength >= this.threshold) {
      this.writeUint32(OUT_OF_BAND);
      this.writeUint32(viewTypeIndex(view));
      this.writeUint32(this.buffers.length);
      this.buffers.push(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      return;
    }
    this.writeUint32(IN_BAND);
    super._writeHostObject(object);
  }
}

class OutOfBandDeserializer extends DeserializerBase {
  constructor(
    body: Buffer,
    private readonly buffers: readonly Uint8Array[],
  ) {
    super(body);
  }

  override _readHostObject(): unknown {
    if (this.readUint32() === IN_BAND) return super._readHostObject();
    const ctor = VIEW_TYPES[this.readUint32()];
    const frame = this.buffers[this.readUint32()];
    if (!ctor || !frame) throw new Error('corrupt value: out-of-band reference to a missing type or frame');
    if (ctor === (Buffer as unknown as ViewConstructor))
      return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const size = ctor.BYTES_PER_ELEMENT ?? 1;
    const aligned = frame.byteOffset % size === 0 ? frame : new Uint8Array(frame); // the copy is aligned at 0
    if (aligned.byteLength % size !== 0)
      throw new Error('corrupt value: out-of-band frame length is not a whole number of elements');
    return new ctor(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
  }
}

/** Encodes a value as [body, ...out-of-band buffers]; throws a DataCloneError for what structured clone cannot carry. */
export function encodeValue(value: unknown, threshold = DEFAULT_OUT_OF_BAND_BYTES): Uint8Array[] {
  const serializer = new OutOfBandSerializer(threshold);
  serializer.writeHeader();
  serializer.writeValue(value);
  return [serializer.releaseBuffer(), ...serializer.buffers];
}

/** Decodes frames made by encodeValue; out-of-band typed arrays view the received frames without copying. */
export function decodeValue(frames: readonly Uint8Array[]): unknown {
  const [body, ...buffers] = frames;
  if (!body) throw new Error('corrupt value: no body frame');
  const deserializer = new OutOfBandDeserializer(Buffer.from(body.buffer, body.byteOffset, body.byteLength), buffers);
  deserializer.readHeader();
  return deserializer.readValue();
}
