/**
 * What the listing commands (`tvm leases`, `tvm audit`) share: time arguments (`15m`, `2h`, `7d`
 * or ISO), output formats (table, json, ndjson, csv) with token-derived text escaped, and paging
 * through an admin route's `next` cursor without ever truncating silently.
 */
import { adminCall, jsonText, printable, refusalOf, UsageError, type Io } from './lib.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `D` of SPEC: a duration back from `nowMs` (`15m`, `2h`, `7d`) or an ISO time; answers ISO. */
export function timeArg(flag: string, value: string | undefined, nowMs: number): string | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,9})([smhd])$/.exec(value.trim());
  if (m) return new Date(nowMs - Number(m[1]) * UNITS[m[2]] * 1000).toISOString();
  const t = Date.parse(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(t)) return new Date(t).toISOString();
  throw new UsageError(`--${flag} is a duration back from now (15m, 2h, 7d) or an ISO time`);
}

export const FORMATS = ['table', 'json', 'ndjson', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

export function formatArg(value: string | undefined, json: boolean | undefined, allowed: readonly Format[] = FORMATS): Format {
  if (json) return 'json';
  const f = (value ?? 'table') as Format;
  if (!allowed.includes(f)) throw new UsageError(`--format is one of ${allowed.join(', ')}`);
  return f;
}

/** `--limit N` (default 100) or `--all`. */
export function limitArg(limit: string | undefined, all: boolean | undefined): number {
  if (all && limit !== undefined) throw new UsageError('give --limit or --all, not both');
  if (all) return Infinity;
  const n = limit === undefined ? 100 : Number(limit);
  if (!Number.isInteger(n) || n < 1) throw new UsageError('--limit is a positive whole number');
  return n;
}

/**
 * Reads pages of `path` (an admin route answering `{[key]: […], next?}`) until `limit` items;
 * answers them and whether more exist.
 */
export async function fetchPages<T>(
  base: string,
  path: string,
  query: URLSearchParams,
  key: string,
  limit: number,
  env: NodeJS.ProcessEnv,
): Promise<{ items: T[]; more: boolean }> {
  const items: T[] = [];
  let next: string | undefined;
  do {
    const q = new URLSearchParams(query);
    q.set('limit', String(Math.min(1000, limit - items.length)));
    if (next) q.set('next', next);
    const answer = await adminCall(`${base}${path}?${q}`, {}, env);
    if (answer.status !== 200) throw refusalOf(answer);
    items.push(...((answer.body[key] ?? []) as T[]));
    next = typeof answer.body.next === 'string' ? answer.body.next : undefined;
  } while (next && items.length < limit);
  return { items, more: next !== undefined };
}

export interface Column<T> {
  title: string;
  value: (row: T) => string | undefined;
}

/** RFC 4180: a cell with a comma, quote or line break is quoted. */
function csvCell(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Prints `rows` in `format`; table and csv cells are escaped text (no control characters reach the terminal). */
export function printRows<T>(io: Io, format: Format, rows: T[], columns: Column<T>[]): void {
  if (format === 'json') return io.out(`${jsonText(rows, 2)}\n`);
  if (format === 'ndjson') return io.out(rows.map((r) => `${jsonText(r)}\n`).join(''));
  const cells = rows.map((r) => columns.map((c) => printable(c.value(r) ?? '')));
  if (format === 'csv') {
    io.out([columns.map((c) => c.title.toLowerCase()), ...cells].map((line) => `${line.map(csvCell).join(',')}\n`).join(''));
    return;
  }
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((line) => line[i].length)));
  const line = (l: string[]) => `${l.map((v, i) => (i === l.length - 1 ? v : v.padEnd(widths[i] + 2))).join('')}\n`;
  io.out(line(columns.map((c) => c.title)) + cells.map(line).join(''));
}

/** The one line on stderr that says a listing stopped before the end. */
export function noteMore(io: Io, more: boolean, shown: number, what: string): void {
  if (more) io.err(`showing the first ${shown} ${what}; more exist (use --limit N or --all)\n`);
}
