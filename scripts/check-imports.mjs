#!/usr/bin/env node
// The import rules `npm run lint` enforces beyond ESLint's per-file view:
// 1. No import cycles among the project's own modules (src/, harness/, test/, bench/), type-only
//    imports included: a cycle is two modules that cannot be read, tested or moved apart.
// 2. src/core/ imports nothing from another src/ folder: the core owns its ports (store,
//    clock, rng types) and everything else depends on it, never the reverse.
// It reads the TypeScript sources (static `import`/`export ... from`, not dynamic `import()`),
// resolves relative specifiers (`./x.js` -> `./x.ts`) and prints every cycle found. Exit 1 on
// any violation.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const roots = ['src', 'harness', 'test', 'bench'].filter((dir) => existsSync(dir));
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'node_modules' && name !== 'results') walk(path);
    } else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) files.push(path);
  }
};
roots.forEach(walk);

const importPattern = /^\s*(?:import|export)\s[^;]*?\sfrom\s+['"](\.{1,2}\/[^'"]+)['"]|^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gms;
const graph = new Map();
for (const file of files) {
  const source = readFileSync(file, 'utf8');
  const targets = new Set();
  for (const match of source.matchAll(importPattern)) {
    const specifier = match[1] ?? match[2];
    const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
    const rel = relative('.', target);
    if (existsSync(rel)) targets.add(rel);
  }
  graph.set(file, [...targets]);
}

const problems = [];
for (const [file, targets] of graph) {
  if (!file.startsWith(join('src', 'core') + '/')) continue;
  for (const target of targets) {
    if (target.startsWith('src/') && !target.startsWith(join('src', 'core') + '/')) {
      problems.push(`${file} imports ${target}: src/core/ imports only src/core/ (pass the rest in)`);
    }
  }
}

// Tarjan's strongly connected components: every component of more than one module (or a
// module importing itself) is a cycle.
let index = 0;
const stack = [];
const state = new Map();
const components = [];
const visit = (node) => {
  const entry = { index, low: index, onStack: true };
  index++;
  state.set(node, entry);
  stack.push(node);
  for (const next of graph.get(node) ?? []) {
    if (!graph.has(next)) continue;
    const seen = state.get(next);
    if (!seen) {
      visit(next);
      entry.low = Math.min(entry.low, state.get(next).low);
    } else if (seen.onStack) entry.low = Math.min(entry.low, seen.index);
  }
  if (entry.low === entry.index) {
    const component = [];
    let member;
    do {
      member = stack.pop();
      state.get(member).onStack = false;
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) components.push(component.sort());
  }
};
for (const node of graph.keys()) if (!state.has(node)) visit(node);
for (const component of components) problems.push(`import cycle among: ${component.join(', ')}`);

if (problems.length > 0) {
  for (const problem of problems) console.error(`check-imports: ${problem}`);
  process.exit(1);
}
console.log(`check-imports: ${graph.size} modules, no cycles, src/core imports only itself`);
