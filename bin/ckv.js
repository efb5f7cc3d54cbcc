#!/usr/bin/env node
// The ckv command. The polyfill is imported first: libp2p needs Promise.withResolvers.
import '../dist/src/util/polyfill.js';
import { main } from '../dist/src/cli/main.js';

await main(process.argv);
