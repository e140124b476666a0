#!/usr/bin/env node
// The `virgo` command. Sources are TypeScript run through tsx (a runtime dependency), so a clone
// works after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
