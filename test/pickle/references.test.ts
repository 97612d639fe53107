// pickle/ references: builtins, packages and local modules travel by name and come back as the other side's own.

import { expect } from 'chai';
import * as path from 'node:path';

import { Kind, pickleResult, recordOrigin, unpickle, UnpickleError } from '../../pickle';
import { classifyModuleFile } from '../../pickle/modules';
import { decodeValue } from '../../protocol/values';
import { waitFor } from '../support/agent-process';
import { context, handMade, ROOT, roundTrip } from './pickle-harness';

describe('pickle/ references', () => {
  describe('references', () => {
    it('sends standard globals and module values as references', () => {
      const fs = require('node:fs') as typeof import('node:fs');
      const named = require(path.join(ROOT, 'src/named.js')) as { scale: unknown };
      const value = {
        max: Math.max,
        iter: Symbol.iterator,
        fs,
        read: fs.readFileSync,
        scale: named.scale,
        proto: Array.prototype,
        gen: Object.getPrototypeOf(function* () {}),
      };
      const [, , root, , table] = decodeValue(pickleResult(value, { codeRoot: ROOT })) as [
        string,
        number,
        bigint,
        unknown[],
        unknown[][],
      ];
      const props = table[Number(root)]![2] as unknown[];
      const kindOf = (ref: unknown) => table[Number(ref)]![0];
      const kinds = Object.fromEntries(
        Array.from({ length: props.length / 2 }, (_, i) => [props[2 * i], kindOf(props[2 * i + 1])]),
      );
      expect(kinds).to.deep.equal({
        max: Kind.GLOBAL,
        iter: Kind.GLOBAL,
        fs: Kind.MODULE,
        read: Kind.MODULE_EXPORT,
        scale: Kind.MODULE_EXPORT,
        proto: Kind.GLOBAL,
        gen: Kind.GLOBAL,
      });
      const copy = roundTrip(value);
      expect(copy).to.deep.equal(value);
      expect(copy.scale).to.equal(named.scale);
    });

    it("indexes exports added after load: a local module's at once, a package's within a second", async () => {
      const kindOf = (value: unknown): unknown => {
        const [, , root, , table] = decodeValue(pickleResult({ value }, { codeRoot: ROOT })) as [
          string,
          number,
          bigint,
          unknown[],
          unknown[][],
        ];
        const props = table[Number(root)]![2] as unknown[];
        return table[Number(props[1])]![0];
      };
      const named = require(path.join(ROOT, 'src/named.js')) as Record<string, unknown>;
      const acorn = require('acorn') as Record<string, unknown>;
      kindOf(named.scale); // indexed now, before the additions
      const late = { late: true };
      const lateInPackage = { lateInPackage: true };
      named.lateExport = late;
      acorn.tslabRemoteLateExport = lateInPackage;
      try {
        expect(kindOf(late)).to.equal(Kind.MODULE_EXPORT);
        // A package's exports are recounted at most once a second (PACKAGE_RECOUNT_MS).
        await waitFor(() => kindOf(lateInPackage) === Kind.MODULE_EXPORT, 5_000, "the package's late export indexed");
      } finally {
        delete named.lateExport;
        delete acorn.tslabRemoteLateExport;
      }
    });

    it('classifies module files: packages (main, subpath, scoped) with versions, code-root files, the rest', () => {
      const acornMain = require.resolve('acorn');
      expect(classifyModuleFile(acornMain, null)?.ref).to.deep.include({ kind: 'package', id: 'acorn' });
      expect(classifyModuleFile(acornMain, null)?.ref.version).to.match(/^8\./);
      const sub = path.join(path.dirname(path.dirname(acornMain)), 'dist', 'bin.js');
      expect(classifyModuleFile(sub, null)?.ref.id).to.equal('acorn/dist/bin.js');
      const scoped = require.resolve('@types/node/package.json');
      expect(classifyModuleFile(scoped, null)?.ref.id).to.equal('@types/node/package.json');
      expect(classifyModuleFile(path.join(ROOT, 'src/shapes.js'), ROOT)?.ref).to.deep.equal({
        kind: 'local',
        id: 'src/shapes.js',
      });
      expect(classifyModuleFile('/elsewhere/x.js', ROOT)).to.equal(null);
    });

    it('warns once per package whose installed version differs', () => {
      const calls: unknown[][] = [];
      const table = [
        [Kind.MODULE, 'package', 'acorn', '0.0.1'],
        [Kind.MODULE_EXPORT, 0n, ['parse']],
        [Kind.ARRAY, undefined, undefined, 0, [0n, 1n, 0n]],
      ];
      const value = unpickle(handMade(2n, table), {
        ...context,
        onVersionMismatch: (...args) => calls.push(args),
      }) as unknown[];
      expect(value[1]).to.equal((require('acorn') as { parse: unknown }).parse);
      expect(calls).to.have.length(1);
      expect(calls[0]![0]).to.equal('acorn');
      expect(calls[0]![1]).to.equal('0.0.1');
      expect(calls[0]![2]).to.match(/^8\./);
    });

    it('resolves ORIGIN references through localClasses and says so when the original is gone', () => {
      class Local {
        v = 1;
      }
      const remoteCopy = class Local {};
      recordOrigin(remoteCopy, 'k:1');
      const instance = Object.assign(new remoteCopy(), { v: 5 });
      const frames = pickleResult({ instance, cls: remoteCopy });
      const back = unpickle(frames, { ...context, localClasses: new Map([['k:1', Local]]) }) as {
        instance: Local;
        cls: unknown;
      };
      expect(back.instance).to.be.instanceOf(Local);
      expect(back.instance.v).to.equal(5);
      expect(back.cls).to.equal(Local);
      expect(() => unpickle(frames, { ...context, localClasses: new Map() })).to.throw(
        UnpickleError,
        /class Local came back from the other side, but this side no longer holds the original/,
      );
    });
  });
});
