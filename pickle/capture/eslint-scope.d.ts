// The part of eslint-scope (v8, CommonJS build) that the capture uses: free identifiers of a parsed function.
declare module 'eslint-scope' {
  export interface Identifier {
    type: 'Identifier';
    name: string;
    start: number;
    end: number;
  }
  export interface Reference {
    identifier: Identifier;
  }
  export interface Scope {
    through: Reference[];
  }
  export interface ScopeManager {
    globalScope: Scope;
  }
  export interface AnalyzeOptions {
    ecmaVersion?: number;
    sourceType?: 'script' | 'module' | 'commonjs';
    ignoreEval?: boolean;
    impliedStrict?: boolean;
    fallback?: 'iteration' | ((node: unknown) => string[]);
  }
  export function analyze(ast: unknown, options?: AnalyzeOptions): ScopeManager;
  export const version: string;
}
