// typescript-eslint's type-aware recommended rules over the TypeScript sources (tsconfig.json's files).
// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test/fixtures/', 'notebooks/', 'bin/', '**/*.js', '**/*.mjs'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // The pickler and the capture take any function the user wrote, so `Function` is the honest type there.
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // CommonJS code: `import x = require()` keeps the module object itself (vm, module) and require() loads user
      // code and optional peers (tslab) at run time.
      '@typescript-eslint/no-require-imports': 'off',
      // Unused names are tsc's job (noUnusedLocals, noUnusedParameters); `_`-prefixed ones are deliberate.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // Tests read untyped wire and JSON content, build deliberately wrong values, pickle methods as values and fake
    // async interfaces without awaiting: these rules would only add casts there. The sources keep them all.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
);
