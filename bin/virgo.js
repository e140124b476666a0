#!/usr/bin/env node
// The `virgo` command. Sources are TypeScript run through tsx (a runtime dependency), so a clone
// works after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// A command that returned is done; a stray handle (a socket in its close handshake, a client's
// retry timer) must not keep the process alive past a short grace.
setTimeout(() => process.exit(code), 2_000).unref();
