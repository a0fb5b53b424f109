/**
 * 6: the load. 32 concurrent clients × 5,000 vends through the local HTTP API, then the count
 * check: every 200 names a lease that is `active`, every lease of the load's principals was
 * answered 200 (or is `failed` under a non-200 answer), and no 5xx.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { PRINCIPAL_INDEX } from '../functions/adapters/dynamodb-lease-store.js';
import type { LocalStack } from '../local/stack.js';
import { GRANT } from './floor-vs-vend.js';
import { pool, progress, round, summarize } from './stats.js';

export interface LoadBench {
  clients: number;
  /** Requests made (every answer, whatever its status). */
  vends: number;
  /** 200 answers: credentials issued. */
  issued: number;
  vends_per_client: number;
  seconds: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  statuses: Record<string, number>;
  errors_5xx: number;
  /** Requests that got no HTTP answer at all (connection errors). */
  transport_errors: number;
  /** 200 answers without an active lease + live leases without a 200 answer. */
  lost_leases: number;
  check: { answered200: number; leasesFound: number; active200: number; not_active_200: number; unanswered_live: number; failed_non200: number; check_s: number };
  timedOut: boolean;
  errorSamples: string[];
}

interface ClientResult {
  leaseIds: string[];
  latencies: number[];
  statuses: Record<string, number>;
  errors: string[];
}

export async function loadBench(stack: LocalStack, opts: { clients: number; vendsPerClient: number; maxSeconds: number }): Promise<LoadBench> {
  const issuer = stack.config.local?.devIssuer ?? 'dev';
  const run = `${Date.now().toString(36)}`;
  const subs = Array.from({ length: opts.clients }, (_, i) => `bench-load-${run}-${i}`);
  // One token per client, reused for all its vends (the dev issuer is not single-use): a workload
  // keeps its token until it expires.
  const tokens = await Promise.all(subs.map((sub) => stack.issuer.mint({ sub, claims: { team: 'analytics' }, ttlSeconds: 3600 })));
  const out = join(mkdtempSync(join(tmpdir(), 'tvm-bench-load-')), 'results.json');
  progress(`load: ${opts.clients} clients × ${opts.vendsPerClient} vends → ${stack.endpoints.api} (bounded by ${opts.maxSeconds} s)`);
  const exit = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/load-client.ts'], {
      stdio: ['ignore', 'inherit', 'pipe'],
      env: {
        ...process.env,
        BENCH_API: stack.endpoints.api,
        BENCH_TOKENS: JSON.stringify(tokens),
        BENCH_VENDS: String(opts.vendsPerClient),
        BENCH_MAX_SECONDS: String(opts.maxSeconds),
        BENCH_GRANT: GRANT,
        BENCH_OUT: out,
      },
    });
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(d.toString().replace(/^(?=.)/gm, '[load-client] ')));
    const kill = setTimeout(() => child.kill('SIGKILL'), (opts.maxSeconds + 60) * 1000);
    child.on('error', reject);
    child.on('exit', (code) => (clearTimeout(kill), resolve(code ?? 1)));
  });
  if (exit !== 0) throw new Error(`load: the client process exited ${exit}`);
  const { wallMs, timedOut, results } = JSON.parse(readFileSync(out, 'utf8')) as { wallMs: number; timedOut: boolean; results: ClientResult[] };
  rmSync(dirname(out), { recursive: true, force: true });

  const latencies = results.flatMap((r) => r.latencies);
  const statuses: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const errors5xx = Object.entries(statuses).reduce((n, [k, v]) => n + (Number(k) >= 500 ? v : 0), 0);
  const s = summarize(latencies);

  // The count check, principal by principal through the principal index.
  progress(`load: count check over ${latencies.length} answers`);
  const c0 = Date.now();
  const check = { answered200: 0, leasesFound: 0, active200: 0, not_active_200: 0, unanswered_live: 0, failed_non200: 0, check_s: 0 };
  await pool(subs, 8, async (sub, i) => {
    const answered = new Set(results[i].leaseIds);
    check.answered200 += results[i].leaseIds.length;
    const found = new Map<string, string>();
    let start: Record<string, unknown> | undefined;
    let pages = 0;
    do {
      const page = await stack.runtime.ddb.send(
        new QueryCommand({
          TableName: stack.runtime.table,
          IndexName: PRINCIPAL_INDEX,
          KeyConditionExpression: '#p = :p',
          ProjectionExpression: 'leaseId, #s',
          ExpressionAttributeNames: { '#p': 'principal', '#s': 'status' },
          ExpressionAttributeValues: { ':p': `${issuer}|${sub}` },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) found.set(item.leaseId as string, item.status as string);
      start = page.LastEvaluatedKey;
    } while (start && ++pages < 100_000);
    check.leasesFound += found.size;
    for (const id of answered) {
      if (found.get(id) === 'active') check.active200++;
      else check.not_active_200++;
    }
    // A repeated lease id in the answers would also be a fault.
    check.not_active_200 += results[i].leaseIds.length - answered.size;
    for (const [id, status] of found) {
      if (answered.has(id)) continue;
      if (status === 'failed') check.failed_non200++;
      else check.unanswered_live++;
    }
  });
  check.check_s = round((Date.now() - c0) / 1000, 1);
  const vends = latencies.length;
  return {
    clients: opts.clients,
    vends,
    issued: statuses['200'] ?? 0,
    vends_per_client: opts.vendsPerClient,
    seconds: round(wallMs / 1000, 1),
    // Issued credentials per second: 4xx answers and transport errors are not vends.
    rps: round((statuses['200'] ?? 0) / (wallMs / 1000), 1),
    p50_ms: round(s.p50, 1),
    p99_ms: round(s.p99, 1),
    max_ms: round(s.max, 1),
    statuses,
    errors_5xx: errors5xx,
    transport_errors: statuses['0'] ?? 0,
    lost_leases: check.not_active_200 + check.unanswered_live,
    check,
    timedOut,
    errorSamples: results.flatMap((r) => r.errors).slice(0, 5),
  };
}
