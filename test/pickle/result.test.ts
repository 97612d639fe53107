// pickle/ on the agent's side: the lean result pickler, and the unpickler's errors for bad input.

import { expect } from 'chai';
import * as net from 'node:net';

import { Kind, MAGIC, PickleError, pickleResult, unpickle, UnpickleError } from '../../pickle';
import { encodeValue } from '../../protocol/values';
import { context, handMade, roundTrip } from './pickle-harness';

describe('pickle/ results and bad input', () => {
  describe('the result pickler', () => {
    it('tells a result that holds a live handle to return data, not to create the handle inside the function', () => {
      const server = net.createServer();
      const error = (() => {
        try {
          pickleResult({ server });
        } catch (thrown) {
          return thrown as Error;
        }
        throw new Error('a net.Server was pickled as a result');
      })();
      expect(error.message).to.match(
        /^result → \.server: net\.Server cannot be pickled \(live handle\)\. A result travels back by value/,
      );
      expect(error.message).not.to.include('inside the remote function');
    });

    it('sends functions and classes created on the agent back by value', () => {
      const helper = (x: number) => x + 1;
      const copy = roundTrip({ deep: [{ helper }] });
      expect(copy.deep[0]!.helper).to.not.equal(helper);
      expect(copy.deep[0]!.helper(1)).to.equal(2);
    });

    it('sends instances of classes made on the agent back as instances of the rebuilt class', () => {
      class RemoteError extends Error {
        extra = 1;
      }
      class Plain {
        x = 2;
        twice(): number {
          return 2 * this.x;
        }
      }
      const copy = roundTrip({ e: new RemoteError('m'), p: new Plain(), q: new Plain() });
      expect(copy.e).to.be.instanceOf(Error);
      expect(copy.e.constructor.name).to.equal('RemoteError');
      expect(copy.e.extra).to.equal(1);
      expect(copy.p.constructor).to.not.equal(Plain);
      expect(copy.p.constructor.name).to.equal('Plain');
      expect(copy.p.twice()).to.equal(4);
      expect(Object.getPrototypeOf(copy.q)).to.equal(Object.getPrototypeOf(copy.p));
    });

    it('refuses an instance with #private fields made on the agent, naming the class and the path', () => {
      class Secret {
        #key = 1;
        key(): number {
          return this.#key;
        }
      }
      expect(() => pickleResult({ s: [new Secret()] })).to.throw(
        PickleError,
        "result → .s → [0]: an instance of class Secret has private members (#key) that cannot be read from outside the class. Use ordinary properties (TypeScript's `private` keyword is fine), or return plain data and keep the instance on the agent",
      );
    });
  });

  describe('bad input', () => {
    it('says what is wrong with frames that are not a pickle of this version', () => {
      expect(() => unpickle([new Uint8Array([1, 2, 3])], context)).to.throw(UnpickleError, /not a pickle/);
      expect(() => unpickle(encodeValue({ a: 1 }), context)).to.throw(
        UnpickleError,
        /does not start with the pickle header/,
      );
      expect(() => unpickle(encodeValue([MAGIC, 99, 1, [], []]), context)).to.throw(
        UnpickleError,
        /version 99 is not supported/,
      );
      expect(() => unpickle(handMade(0n, [[Kind.GLOBAL, ['NoSuchGlobalHere']]]), context)).to.throw(
        UnpickleError,
        /the global NoSuchGlobalHere does not exist/,
      );
      expect(() => unpickle(handMade(0n, [[99]]), context)).to.throw(UnpickleError, /unknown node kind 99/);
      expect(() => unpickle(handMade(5n, [[Kind.OBJECT]]), context)).to.throw(
        UnpickleError,
        /5 is not a node reference/,
      );
    });
  });
});
