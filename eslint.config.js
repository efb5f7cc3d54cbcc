// ESLint flat config. Beyond typescript-eslint's recommended rules, it keeps src/core/ pure:
// no I/O modules, no clock, no randomness, no timers. The core gets all of those passed in,
// so the deterministic simulator drives the same code that runs in production.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ioModules = [
  'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'dgram', 'node:dgram',
  'http', 'node:http', 'https', 'node:https', 'http2', 'node:http2', 'child_process', 'node:child_process',
  'worker_threads', 'node:worker_threads', 'os', 'node:os', 'timers', 'node:timers',
  'timers/promises', 'node:timers/promises', 'process', 'node:process', 'perf_hooks', 'node:perf_hooks',
  'level', 'classic-level', 'libp2p', '@grpc/grpc-js', 'dns', 'node:dns', 'tls', 'node:tls',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly' },
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ioModules.map((name) => ({ name, message: 'src/core/ is pure: pass I/O in from the caller.' })),
          patterns: [
            { group: ['@libp2p/*', '@chainsafe/*'], message: 'src/core/ is pure.' },
            {
              // The core owns its ports (store.ts, ports.ts): it imports only core modules and
              // pure npm packages, never another folder of src/, which import the core instead.
              group: [
                '../store/**', '../net/**', '../control/**', '../http/**', '../cli/**', '../util/**', '../node/**',
                '../config*', '../node*', '../../**',
              ],
              message: 'src/core/ imports only src/core/ and pure npm packages: pass the rest in through its ports.',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'src/core/ reads no clock: take wallClockMs from the caller.' },
        { object: 'Math', property: 'random', message: 'src/core/ uses no ambient randomness: take an rng from the caller.' },
        { object: 'performance', property: 'now', message: 'src/core/ reads no clock.' },
        { object: 'process', property: 'hrtime', message: 'src/core/ reads no clock.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date']", message: 'src/core/ reads no clock.' },
        { selector: "CallExpression[callee.name=/^(setTimeout|setInterval|setImmediate|queueMicrotask)$/]", message: 'src/core/ owns no timers: the runtime schedules.' },
        { selector: "MemberExpression[object.name=/^(globalThis|window|global)$/][property.name=/^(setTimeout|setInterval|setImmediate|Date|process)$/]", message: 'src/core/ owns no timers or clocks.' },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'src/core/ does no I/O.' },
        { name: 'setTimeout', message: 'src/core/ owns no timers.' },
        { name: 'setInterval', message: 'src/core/ owns no timers.' },
        { name: 'fetch', message: 'src/core/ does no I/O.' },
      ],
    },
  },
);
