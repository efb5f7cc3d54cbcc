#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner. Node 20's
// `--test` takes no globs, so the files are listed here; an optional argument narrows the
// search to a folder (e.g. `test/unit`). Runs files one at a time where they use real
// processes or sockets (integration, lan, browser) so they do not fight over the 2 cores.
//
// Every file runs under a time limit (`--test-timeout`, which Node's runner applies to each
// file's process): a test that hangs fails its file after fileMsMax, names the file, and the
// other files still run, instead of one hang using up the whole CI budget. The slowest file
// takes ~65 s on an idle 2-core machine; the limit leaves room for a machine loaded 5x.
// (Node 22 and later apply the limit to each test inside the file instead, and a timed-out
// test can leave the file's process waiting on a socket: for the files that use real
// processes and sockets, `--test-force-exit` ends a file's process once its tests and hooks
// are done; the harness's exit handler still kills the nodes it started.)
//
// Not for the others (unit, sim): on Node 24 a forced exit can end a file's process before
// its reporter has sent the last results to the runner, which then reports fewer tests, with
// no failure (3 of 10 runs of three unit files here: 33 or 34 tests of 38). Those files leave
// nothing open and end by themselves. In case one does not, each group also runs under a
// deadline (groupMsMax): past it the group is killed and the run fails, naming the group.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join('dist', process.argv[2] ?? 'test');
if (!existsSync(root)) {
  console.error(`run-tests: ${root} does not exist; build first (npm run build)`);
  process.exit(2);
}
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.test.js')) files.push(path);
  }
};
walk(root);
if (files.length === 0) {
  console.error(`run-tests: no test files under ${root}`);
  process.exit(1);
}
const fileMsMax = 10 * 60 * 1000;
/** Per group of files: unit and sim take ~4 min on 2 cores, integration ~16; 3x for a loaded machine. */
const groupMsMax = { parallel: 15 * 60 * 1000, serial: 50 * 60 * 1000 };
const serial = files.filter((f) => /[\\/](integration|lan|browser)[\\/]/.test(f));
const parallel = files.filter((f) => !serial.includes(f));
let status = 0;
for (const [name, group] of [['parallel', parallel], ['serial', serial]]) {
  if (group.length === 0) continue;
  const args = ['--test', '--test-reporter=spec', `--test-timeout=${fileMsMax}`];
  if (name === 'serial') args.push('--test-concurrency=1', '--test-force-exit');
  const result = spawnSync(process.execPath, [...args, ...group], { stdio: 'inherit', timeout: groupMsMax[name] });
  if (result.error?.code === 'ETIMEDOUT') {
    console.error(`run-tests: the ${name} group (${group.length} files) did not end within ${groupMsMax[name] / 60000} min: killed`);
    status = 1;
  } else if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);
