/**
 * The load's clients, in their own process (so they do not take the server's core): N concurrent
 * clients, each making its vends one after another over keep-alive `fetch` to the local API
 * (loopback only). Writes the results as JSON to the file named by BENCH_OUT.
 *
 * Env: BENCH_API (http://127.0.0.1:port), BENCH_TOKENS (JSON array, one token per client),
 * BENCH_VENDS (per client), BENCH_MAX_SECONDS, BENCH_GRANT, BENCH_OUT.
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const api = process.env.BENCH_API ?? '';
if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(api)) throw new Error(`load: BENCH_API must be a loopback URL, got ${api}`);
const tokens = JSON.parse(process.env.BENCH_TOKENS ?? '[]') as string[];
const vends = Number(process.env.BENCH_VENDS ?? 100);
const maxMs = Number(process.env.BENCH_MAX_SECONDS ?? 300) * 1000;
const grant = process.env.BENCH_GRANT ?? 'reports-read';
const body = JSON.stringify({ grant });

interface ClientResult {
  leaseIds: string[];
  latencies: number[];
  statuses: Record<string, number>;
  /** Lease ids named by non-200 answers, when an answer names one. */
  errors: string[];
}

const started = performance.now();
const deadline = started + maxMs;

async function client(token: string): Promise<ClientResult> {
  const r: ClientResult = { leaseIds: [], latencies: [], statuses: {}, errors: [] };
  for (let i = 0; i < vends && performance.now() < deadline; i++) {
    const t0 = performance.now();
    let status = 0;
    let text = '';
    try {
      const res = await fetch(`${api}/v1/vend`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      text = String((e as Error)?.message);
    }
    r.latencies.push(performance.now() - t0);
    r.statuses[status] = (r.statuses[status] ?? 0) + 1;
    if (status === 200) {
      const leaseId = (JSON.parse(text) as { leaseId?: string }).leaseId;
      r.leaseIds.push(leaseId ?? '(none)');
    } else if (r.errors.length < 20) {
      // The error body (never a credential: only non-200 answers are kept).
      r.errors.push(`${status} ${text.slice(0, 300)}`);
    }
  }
  return r;
}

const results = await Promise.all(tokens.map(client));
const wallMs = performance.now() - started;
writeFileSync(process.env.BENCH_OUT ?? '/dev/null', JSON.stringify({ wallMs, timedOut: performance.now() >= deadline, results }));
