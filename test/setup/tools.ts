// Unit tests need no service, only Node and the one third-party client a Linux operator already
// has: nc (netcat-openbsd; some tests check our ports against the real `nc -N`). A missing nc
// fails the run here with the fix instead of as a spawn error deep in a test.
import { execFileSync } from 'node:child_process';

export function missingTools(tools: string[]): string[] {
  return tools.filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

export default function setup(): void {
  const missing = missingTools(['nc']);
  if (missing.length > 0) {
    throw new Error(
      `unit tests need the ${missing.join(', ')} command: \`sudo apt-get install netcat-openbsd\` ` +
        '(or `npm run services:up`, which installs it with the services).',
    );
  }
}
