// The schema of an error as it travels (errors.ts's WireError): a reply's `error`, a worker's report. User code
// shapes its content, so nothing is trusted: the code must be one of ours, and a name, message or stack that is not
// a string is replaced, as is a cause chain deeper than toWireError makes.

import { Static, Type } from '@sinclair/typebox';

import { ERROR_CODES, WireError } from './errors';
import { compile, decode, JsonObject, OneOf } from './schema';

const MAX_CAUSES = 8;

const WireErrorOnWire = Type.Recursive(
  (Self) =>
    Type.Object({
      code: OneOf(ERROR_CODES, { expected: 'an error code' }),
      name: Type.Optional(Type.Unknown()),
      message: Type.Optional(Type.Unknown()),
      stack: Type.Optional(Type.Unknown()),
      cause: Type.Optional(Self),
      props: Type.Optional(JsonObject),
    }),
  { $id: 'WireError' },
);

function fromWire(wire: Static<typeof WireErrorOnWire>, depth = 0): WireError {
  const error: WireError = {
    code: wire.code,
    name: typeof wire.name === 'string' ? wire.name : 'Error',
    message: typeof wire.message === 'string' ? wire.message : '',
  };
  if (typeof wire.stack === 'string') error.stack = wire.stack;
  if (wire.cause !== undefined && depth < MAX_CAUSES) error.cause = fromWire(wire.cause, depth + 1);
  if (wire.props !== undefined) error.props = wire.props;
  return error;
}

/**
 * A WireError field of a message: checked, then decoded (`Decode`) to a WireError with its defaults filled in.
 * Senders build WireErrors with toWireError and never encode through the schema.
 */
export const WireErrorSchema = Type.Transform(WireErrorOnWire)
  .Decode((wire) => fromWire(wire))
  .Encode(() => {
    throw new Error('a WireError is built by toWireError, not encoded through its schema');
  });

const checker = compile(WireErrorSchema);

/**
 * Checks an error received from a peer outside a message (a worker's fatal report). Throws BAD_MESSAGE naming the
 * field (`where` is its path) when it is not a WireError.
 */
export function checkWireError(value: unknown, where = 'error'): WireError {
  return decode(checker, value, { where });
}
