/**
 * The soak: `tvm dev` as users run it (`node cli/bin.mjs dev --port 0 --ephemeral`, its own
 * process), driven through N vend + self-revoke pairs, each client with one token from the local
 * dev issuer — the loop of issue 10 item 9, after which Node 20.20 died with a V8 fatal error
 * (SIGTRAP; see functions/adapters/cedar-policy.ts). At the end the server must still be running
 * and answer a vend with 200, then stop cleanly on SIGTERM; `ok` is false otherwise and
 * `npm run bench` exits non-zero. It checks survival, not speed: no timing is asserted.
 *
 * Alone: `npx tsx bench/soak.ts [--pairs=N] [--clients=K] [--persistent] [--node-arg=--trace-deopt …]
 * [--server-log=FILE]` prints one JSON object; in the bench: `--only=soak` or `--soak=N`. Loopback only.
 */
import { spawn } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse, stringify } from 'yaml';
import { GRANT } from './floor-vs-vend.js';
import { progress, round } from './stats.js';

export interface SoakOptions {
  pairs: number;
  /** Concurrent clients, one principal each (default 1: the attack loop of item 1). */
  clients?: number;
  /** Extra node flags for the server (e.g. --trace-deopt). */
  nodeArgs?: string[];
  maxSeconds?: number;
  /** false: a data folder on disk (what `npm start` uses) instead of --ephemeral. */
  ephemeral?: boolean;
  /** Copy of everything the server writes (stdout and stderr). */
  serverLog?: string;
}

export interface Soak {
  pairs: number;
  clients: number;
  /** Pairs where the vend answered 200 and its self-revoke answered 200. */
  pairs_ok: number;
  /** Revocations that overflowed the role's deny policy and fell back (audit events). */
  fallbacks: number;
  statuses: { vend: Record<string, number>; revoke: Record<string, number> };
  seconds: number;
  /** Still running after the pairs, and answered one more vend with 200. */
  server_alive: boolean;
  /** How the server process ended: by SIGTERM after the soak, or by itself during it. */
  exit: { code: number | null; signal: string | null; during_soak: boolean };
  rss_mb: { start: number | null; end: number | null; samples: number[] };
  node: string;
  node_args: string[];
  /** The end of the server's stderr (a V8 fatal error lands there). */
  stderr_tail: string;
  errorSamples: string[];
  ok: boolean;
}

/** VmRSS of a process from /proc, in MB (null without /proc or once the process is gone). */
function rssMb(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024, 1) : null;
  } catch {
    return null;
  }
}

export async function soakBench(opts: SoakOptions): Promise<Soak> {
  const nodeArgs = opts.nodeArgs ?? [];
  const clients = Math.max(1, opts.clients ?? 1);
  const maxMs = (opts.maxSeconds ?? 1800) * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'tvm-bench-soak-'));
  // The example config with the per-principal vend rate lifted (a 429 is not what the soak looks
  // for); the self-revokes keep each principal under maxLiveLeasesPerPrincipal.
  const example = parse(readFileSync('config/tvm.yaml', 'utf8'));
  example.leases = { ...example.leases, ratePerPrincipal: { vends: 1_000_000, windowSeconds: 60 } };
  writeFileSync(join(dir, 'tvm.yaml'), stringify(example));
  cpSync('config/policies', join(dir, 'policies'), { recursive: true });
  if (existsSync('config/local-s3')) cpSync('config/local-s3', join(dir, 'local-s3'), { recursive: true });
  const data = join(dir, 'data');

  const child = spawn(process.execPath, [...nodeArgs, 'cli/bin.mjs', 'dev', '--port', '0', ...(opts.ephemeral === false ? [] : ['--ephemeral']), '--config', join(dir, 'tvm.yaml'), '--data', data], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own state folder: the soak's stack must not replace the user's pointer to theirs.
    env: { ...process.env, XDG_STATE_HOME: join(dir, 'state'), TVM_DATA: data },
  });
  const log = opts.serverLog ? createWriteStream(opts.serverLog) : undefined;
  if (log) (child.stdout!.pipe(log, { end: false }), child.stderr!.pipe(log, { end: false }));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  // stdout: the banner, then one audit line per request (drained; fallbacks counted).
  let ready = false;
  let fallbacks = 0;
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('tvm dev is running')) ready = true;
      else if (line.includes('"revocation_fallback"')) fallbacks++;
    }
  });
  let exited: { code: number | null; signal: string | null } | undefined;
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));

  const statuses = { vend: {} as Record<string, number>, revoke: {} as Record<string, number> };
  const count = (m: Record<string, number>, s: number) => (m[s] = (m[s] ?? 0) + 1);
  const errorSamples: string[] = [];
  const note = (s: string) => errorSamples.length < 5 && errorSamples.push(s);
  const samples: number[] = [];
  let pairsOk = 0;
  let started = 0;
  let done = 0;
  let rssStart: number | null = null;
  let alive = false;
  let rssEnd: number | null = null;
  let seconds = 0;
  let duringSoak = false;
  try {
    const t0 = Date.now();
    while (!ready || !existsSync(join(data, 'endpoints.json'))) {
      if (exited) throw new Error(`soak: tvm dev exited before it was ready (${JSON.stringify(exited)}): ${stderr.slice(-2000)}`);
      if (Date.now() - t0 > 60_000) throw new Error('soak: tvm dev did not start within 60 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    const ep = JSON.parse(readFileSync(join(data, 'endpoints.json'), 'utf8')) as { api: string; issuer: string; adminToken: string };
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(ep.api)) throw new Error(`soak: the API must be on loopback, got ${ep.api}`);
    const run = Date.now().toString(36);
    const tokens = await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        const minted = await fetch(`${ep.issuer}/token`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ep.adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ sub: `bench-soak-${run}-${i}`, ttlSeconds: 3600, claims: { team: 'analytics' } }),
        });
        if (minted.status !== 200) throw new Error(`soak: minting a token answered ${minted.status}`);
        return String(((await minted.json()) as { token: string }).token);
      }),
    );
    const vend = async (token: string) => {
      const r = await fetch(`${ep.api}/v1/vend`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ grant: GRANT }) });
      const text = await r.text();
      count(statuses.vend, r.status);
      return { status: r.status, text };
    };
    const pair = async (token: string) => {
      const v = await vend(token);
      if (v.status !== 200) return note(`vend ${v.status} ${v.text.slice(0, 300)}`);
      const leaseId = (JSON.parse(v.text) as { leaseId: string }).leaseId;
      const r = await fetch(`${ep.api}/v1/leases/${encodeURIComponent(leaseId)}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      const text = await r.text();
      count(statuses.revoke, r.status);
      if (r.status === 200) pairsOk++;
      else note(`revoke ${r.status} ${text.slice(0, 300)}`);
    };

    rssStart = rssMb(child.pid);
    samples.push(rssStart ?? NaN);
    progress(`soak: ${opts.pairs} vend + self-revoke pairs, ${clients} client(s), against tvm dev (pid ${child.pid}, node ${process.version}${nodeArgs.length ? ' ' + nodeArgs.join(' ') : ''}), RSS ${rssStart} MB`);
    started = Date.now();
    await Promise.all(
      tokens.map(async (token) => {
        while (done < opts.pairs && !exited && Date.now() - started < maxMs) {
          done++;
          try {
            await pair(token);
          } catch (e) {
            // No answer at all: the server is gone or going (the loop ends once 'exit' arrives).
            count(statuses.vend, 0);
            note(`no answer: ${(e as Error).message}`);
            await new Promise((r) => setTimeout(r, 100));
          }
          if (done % 100 === 0) {
            samples.push(rssMb(child.pid) ?? NaN);
            progress(`soak: ${done} pairs, RSS ${samples[samples.length - 1]} MB`);
          }
        }
      }),
    );
    if (!exited) alive = (await vend(tokens[0]).catch(() => ({ status: 0 }))).status === 200 && !exited;
  } finally {
    rssEnd = rssMb(child.pid);
    seconds = started ? round((Date.now() - started) / 1000, 1) : 0;
    duringSoak = exited !== undefined;
    if (!exited) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exit;
      clearTimeout(kill);
    }
    log?.end();
    rmSync(dir, { recursive: true, force: true });
  }
  const end = exited!;
  return {
    pairs: done,
    clients,
    pairs_ok: pairsOk,
    fallbacks,
    statuses,
    seconds,
    server_alive: alive,
    exit: { code: end.code, signal: end.signal, during_soak: duringSoak },
    rss_mb: { start: rssStart, end: rssEnd, samples },
    node: process.version,
    node_args: nodeArgs,
    stderr_tail: stderr.slice(-2000),
    errorSamples,
    // Alive and answering after every pair, then a clean stop (tvm dev exits 0 on SIGTERM).
    ok: alive && !duringSoak && done === opts.pairs && pairsOk === opts.pairs && end.code === 0,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const get = (name: string) => process.argv.slice(2).filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
  const r = await soakBench({
    pairs: Number(get('pairs')[0] ?? 1000),
    clients: Number(get('clients')[0] ?? 1),
    nodeArgs: get('node-arg'),
    ephemeral: !process.argv.includes('--persistent'),
    serverLog: get('server-log')[0],
  });
  process.stdout.write(JSON.stringify(r) + '\n');
  process.exitCode = r.ok ? 0 : 1;
}
