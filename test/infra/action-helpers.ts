/** Shared by the vend action's script tests (stub endpoints here, the local stack in test/e2e). */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ACTION_SCRIPT = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), '.github', 'actions', 'vend', 'vend.mjs');

/** Parses a runner command file ($GITHUB_ENV, $GITHUB_STATE, $GITHUB_OUTPUT): NAME<<DELIM, value lines, DELIM. */
export function parseCommandFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^=<]+)<<(.+)$/.exec(lines[i]);
    if (!m) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]);
    out[m[1]] = value.join('\n');
  }
  return out;
}
