// The pickle tests' round trip: values pickled as results (pickle/result.ts) against the fixture project's code
// root, unpickled with its require; and hand-made pickles for what no encoder writes.

import * as path from 'node:path';

import { MAGIC, pickleResult, requireFromRoot, unpickle, VERSION } from '../../pickle';
import { encodeValue } from '../../protocol/values';

export const ROOT = path.resolve(__dirname, '../../../test/fixtures/pickle/project');
export const context = { requireModule: requireFromRoot(ROOT) };
export const roundTrip = <T>(value: T): T => unpickle(pickleResult(value, { codeRoot: ROOT }), context) as T;
/** A hand-made pickle: `table` holds the nodes, `root` is a slot (a bigint ref indexes the table). */
export const handMade = (root: unknown, table: unknown[][]) => encodeValue([MAGIC, VERSION, root, [], table]);
