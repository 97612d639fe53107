// A CURVE key pair for one launch: the agents it starts admit only this public key, so a cluster needs no manual
// key copying and admits no one else. The secret key never leaves this process.

import * as zmq from 'zeromq';

import type { SessionCurve } from '../types';

export function sessionCurve(): SessionCurve {
  return zmq.curveKeyPair();
}
