/**
 * `tvm leases` on the real local stack, as an on-call engineer runs it: 160 leases are never
 * silently cut to 100 (the listing says more exist; --all reads every page), the filters and
 * time bounds reach the admin route, the formats parse, and `leases show` shows what the lease
 * could do (its session policy and tags).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/tvm.js';
import type { Io } from '../../cli/lib.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
const ids: string[] = [];

beforeAll(async () => {
  stack = await startTestStack();
  for (let batch = 0; batch < 16; batch++) {
    const answers = await Promise.all(
      Array.from({ length: 10 }, async (_, j) => {
        const i = batch * 10 + j;
        const token = await stack.mintToken({ team: 'analytics' }, { sub: `agent-${i % 8}` });
        return stack.vend({ grant: 'reports-read', context: i % 40 === 0 ? { task: 'INC-42' } : {} }, token);
      }),
    );
    for (const a of answers) {
      expect(a.status).toBe(200);
      ids.push(a.body.leaseId);
    }
  }
}, 120_000);
afterAll(() => stack?.close());

async function tvm(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), env: { TVM_ENDPOINT: stack.api, TVM_ADMIN_TOKEN: stack.adminToken } };
  const code = await main(args, io);
  return { code, out, err };
}

const rowsOf = (table: string) => table.trim().split('\n').slice(1);

describe('tvm leases at scale', () => {
  it('with 160 leases, the default shows 100 and says on stderr that more exist', async () => {
    const r = await tvm('leases');
    expect(r.code).toBe(0);
    expect(rowsOf(r.out)).toHaveLength(100);
    expect(r.err).toMatch(/more exist/);
  });

  it('--all reads every page: all 160, each once, and nothing on stderr', async () => {
    const r = await tvm('leases', '--all', '--format', 'ndjson');
    expect(r.code).toBe(0);
    const got = r.out.trim().split('\n').map((l) => JSON.parse(l).leaseId as string);
    expect(got.sort()).toEqual([...ids].sort());
    expect(r.err).toBe('');
  });

  it('--limit N shows N and says more exist; a limit past the end says nothing', async () => {
    const few = await tvm('leases', '--limit', '7', '--format', 'json');
    expect(JSON.parse(few.out)).toHaveLength(7);
    expect(few.err).toMatch(/more exist/);
    const enough = await tvm('leases', '--limit', '500', '--format', 'json');
    expect(JSON.parse(enough.out)).toHaveLength(160);
    expect(enough.err).toBe('');
  });

  it('the table has issued, expires and task columns; --task filters by context.task', async () => {
    const r = await tvm('leases', '--task', 'INC-42');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0].split(/\s+/)).toEqual(['LEASE', 'STATUS', 'GRANT', 'ISSUED', 'EXPIRES', 'TASK', 'PRINCIPAL']);
    const rows = rowsOf(r.out);
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatch(/ INC-42 /);
  });

  it('csv has a header and one parsable line per lease', async () => {
    const r = await tvm('leases', '--principal', 'dev|agent-3', '--format', 'csv');
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe('lease,status,grant,issued,expires,task,principal');
    expect(lines).toHaveLength(1 + 20);
    for (const line of lines.slice(1)) expect(line.split(',')).toHaveLength(7);
  });

  it('--since and --until bound issuedAt (durations and ISO)', async () => {
    expect(JSON.parse((await tvm('leases', '--since', '15m', '--all', '--format', 'json')).out)).toHaveLength(160);
    expect(JSON.parse((await tvm('leases', '--until', '2h', '--all', '--format', 'json')).out)).toHaveLength(0);
    expect(JSON.parse((await tvm('leases', '--since', '2001-01-01T00:00:00Z', '--until', '2001-01-02', '--format', 'json')).out)).toHaveLength(0);
    expect((await tvm('leases', '--since', 'yesterday')).code).toBe(2);
  });

  it('bad usage is exit 2: an unknown format, --limit with --all', async () => {
    expect((await tvm('leases', '--format', 'xml')).code).toBe(2);
    expect((await tvm('leases', '--limit', '5', '--all')).code).toBe(2);
  });

  it('leases show prints the session policy and tags the lease was issued with', async () => {
    const r = await tvm('leases', 'show', ids[0]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('arn:aws:s3:::reports/analytics/*');
    expect(r.out).toMatch(/tags\s+team=analytics tvm:lease=L/);
    const j = JSON.parse((await tvm('leases', 'show', ids[0], '--format', 'json')).out);
    expect(JSON.parse(j.sessionPolicy).Statement[0].Resource).toEqual(['arn:aws:s3:::reports/analytics/*']);
    expect(j.sessionTags).toMatchObject({ team: 'analytics', 'tvm:lease': ids[0] });
  });

  it('the admin route refuses an unknown query parameter (a typo never widens a listing)', async () => {
    const res = await fetch(`${stack.api}/v1/admin/leases?principle=dev%7Cagent-1`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    expect(res.status).toBe(400);
  });
});
