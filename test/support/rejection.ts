// The error a promise rejects with, checked to be of the expected class; a promise that resolves fails the test.

import { expect } from 'chai';

import { RemoteError } from '../../protocol/errors';

export async function rejectionOf<E extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(type);
    return error as E;
  }
  expect.fail('expected the promise to reject');
}

/** The code of the RemoteError a client call rejects with. */
export async function remoteCodeOf(promise: Promise<unknown>): Promise<string> {
  return (await rejectionOf(promise, RemoteError)).code;
}
