// Which paths of a code root are not shipped, decided as git decides for .gitignore files, plus the defaults and
// the user's excludes. Sources, from highest precedence down; the first source with a matching pattern decides:
//   1. ALWAYS_EXCLUDED: version control and the agent's own work directory. Nothing re-includes them.
//   2. DEFAULT_EXCLUDES followed by the user's `exclude` patterns, as one gitignore list rooted at the code root, so a
//      user pattern can re-include a default (`!dist/`) or a gitignored file (`!data/keep.csv`).
//   3. Every .gitignore, the deepest first; a pattern in `a/.gitignore` matches paths relative to `a/`.
// Matching is case-sensitive, as git's is on Linux. Directories that are excluded are never descended, which is why
// a file inside one cannot be re-included (as in git). One known difference: a directory excluded by a shallow
// .gitignore but re-included by a deeper one's negation is walked, yet its files are still excluded by the shallow
// pattern (the `ignore` package applies a pattern's directory match to the directory's contents; git would ship them).

import ignore, { type Ignore } from 'ignore';

/** Names excluded at any depth, files or directories, whatever any pattern says. */
export const ALWAYS_EXCLUDED: readonly string[] = ['.git', '.tslab-remote'];

/**
 * Excluded at any depth unless a user pattern re-includes them: installed packages and the usual build output
 * (tsc/bundlers: dist, build, out; test coverage; tool caches: .cache, .next, .turbo), notebooks and their
 * checkpoints (a notebook's code reaches the agent pickled, not as a file), and secrets that must never
 * reach another machine by accident (CurveZMQ and SSH private keys, .env files, registry credentials).
 */
export const DEFAULT_EXCLUDES: readonly string[] = [
  'node_modules/',
  'dist/',
  'build/',
  'out/',
  'coverage/',
  '.cache/',
  '.next/',
  '.turbo/',
  // notebooks: Jupyter saves them every two minutes, which would ship a new snapshot (and reload nothing) each time
  '*.ipynb',
  '.ipynb_checkpoints/',
  // secrets
  '*.key',
  '*.pem',
  'id_rsa*',
  'id_ed25519*',
  'id_ecdsa*',
  '.ssh/',
  '.aws/',
  '.env',
  '.env.*',
  '.npmrc',
  '.netrc',
];

// One parsed gitignore list and the directory (relative to the root, '' for the root) its patterns are relative to.
interface Level {
  base: string;
  matcher: Ignore;
}

// A parsed gitignore list, matched case-sensitively like git on Linux.
export function parseGitignore(text: string | readonly string[]): Ignore {
  return ignore({ ignorecase: false }).add(typeof text === 'string' ? text : [...text]);
}

/** The rules in force inside one directory; `withGitignore` gives the rules of a subdirectory that has its own. */
export class ExcludeRules {
  private constructor(
    private readonly overrides: Ignore,
    // Shallowest first; matched deepest first.
    private readonly levels: readonly Level[],
  ) {}

  // The rules at the code root, before its .gitignore is read.
  static create(userExcludes: readonly string[] = []): ExcludeRules {
    return new ExcludeRules(parseGitignore([...DEFAULT_EXCLUDES, ...userExcludes]), []);
  }

  // The rules below `base` (relative directory), which holds a .gitignore parsed into `matcher`.
  withGitignore(base: string, matcher: Ignore): ExcludeRules {
    return new ExcludeRules(this.overrides, [...this.levels, { base, matcher }]);
  }

  /** Whether `relative` (POSIX, from the code root) is left out; `isDir` lets dir-only patterns (`tmp/`) match. */
  excludes(relative: string, isDir: boolean): boolean {
    const name = relative.slice(relative.lastIndexOf('/') + 1);
    if (ALWAYS_EXCLUDED.includes(name)) return true;
    const own = verdict(this.overrides, isDir ? `${relative}/` : relative);
    if (own !== undefined) return own;
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const { base, matcher } = this.levels[i]!;
      const inner = base === '' ? relative : relative.slice(base.length + 1);
      const found = verdict(matcher, isDir ? `${inner}/` : inner);
      if (found !== undefined) return found;
    }
    return false;
  }
}

// true = excluded, false = re-included by a negation, undefined = no pattern of this list matches.
function verdict(matcher: Ignore, pathname: string): boolean | undefined {
  const result = matcher.test(pathname);
  return result.ignored ? true : result.unignored ? false : undefined;
}
