/**
 * A stack trace with its bundle positions mapped to the TypeScript sources, read from the source
 * map beside the bundle (`index.js.map`) only when a stack is actually logged.
 *
 * The deployed functions do not run with `--enable-source-maps`: with it, Node reads and parses
 * the map (megabytes of JSON) and scans the bundle's line lengths when the bundle loads, on every
 * cold start, to serve the rare stack trace (docs/performance.md, "Source maps"). This maps the
 * same frames lazily with Node's own `module.SourceMap`, at the cost of one map parse per
 * process on its first unexpected error.
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';

const maps = new Map<string, SourceMap | null>();

function mapFor(file: string): SourceMap | null {
  let map = maps.get(file);
  if (map === undefined) {
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
    } catch {
      map = null; // no map beside it (tsx, tests), or unreadable: the frame stays as it is
    }
    maps.set(file, map);
  }
  return map;
}

// `    at fn (/var/task/index.js:1:2345)` or `    at /var/task/index.js:1:2345`
const FRAME = /^(\s*at (?:.*? \()?)(\/[^():]+\.c?js):(\d+):(\d+)(\)?)$/;

/** `stack` with every frame in a bundle that has a source map rewritten to its original position. */
export function mappedStack(stack: string | undefined): string | undefined {
  if (!stack) return stack;
  return stack
    .split('\n')
    .map((line) => {
      const m = FRAME.exec(line);
      if (!m) return line;
      const entry = mapFor(m[2])?.findEntry(Number(m[3]) - 1, Number(m[4]) - 1);
      if (!entry || !('originalSource' in entry) || !entry.originalSource) return line;
      return `${m[1]}${entry.originalSource}:${entry.originalLine + 1}:${entry.originalColumn + 1}${m[5]}`;
    })
    .join('\n');
}
