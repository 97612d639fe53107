// The code root: the directory whose tree is shipped to the agent. Like Node's own package resolution, it is the
// nearest directory (the notebook's own or an ancestor) holding a package.json.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/** The nearest ancestor of `startDir` (inclusive) that holds a package.json file; throws naming `startDir` if none. */
export async function findCodeRoot(startDir: string): Promise<string> {
  const start = path.resolve(startDir);
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (await isFile(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) break;
  }
  throw new Error(
    `no package.json in ${start} or any directory above it, so there is no code root to ship: ` +
      'run `npm init -y` in the directory that holds your sources, or pass the code root explicitly',
  );
}

// A directory named package.json does not make a code root.
async function isFile(candidate: string): Promise<boolean> {
  try {
    return (await fsp.stat(candidate)).isFile();
  } catch {
    return false;
  }
}
