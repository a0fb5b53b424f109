/**
 * Where a vend's time goes: `npx tsx bench/vend-phases.ts [--sim] [--services=inline] [--vends=N]`.
 * The vend handler in-process (as in floor-vs-vend.ts, the AWS services in their own process unless
 * `--services=inline`), with marks relative to the handler's start: each call to STS and DynamoDB
 * sent and answered (the nth call of a kind numbered), the token's key looked up, the Cedar
 * decision's start and end, and the answer. Medians over N vends after a warm-up; then the same
 * Cedar decision in a tight loop, and after one DynamoDB round trip each, to show what the vend's
 * surroundings do to it. `--sim` adds the bench's AWS latencies (AssumeRole 20 ± 5 ms, DynamoDB
 * 4 ± 1 ms). Prints one line per mark; only loopback traffic.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { rmSync } from 'node:fs';
import type { AuthzRequest } from '../functions/core/ports.js';
import { createVendHandler } from '../functions/vend/handler.js';
import { startLocalStack } from '../local/stack.js';
import { httpEvent } from '../test/helpers/events.js';
import { writeBenchConfig } from './bench-config.js';
import { AWS_LIKE, GRANT, injectLatency } from './floor-vs-vend.js';
import { startRemoteServices } from './remote-services.js';

const args = new Set(process.argv.slice(2));
const vends = Number([...args].find((a) => a.startsWith('--vends='))?.slice(8) ?? 400);
const { dir: configDir, configPath } = writeBenchConfig('tvm-phases-');
const local = await startLocalStack({ configPath: configPath, port: 0, ephemeral: true, logSink: () => {}, sweepIntervalMs: 0, rotateIntervalMs: 0 });
const remote = args.has('--services=inline') ? undefined : await startRemoteServices(local, configPath);
const rt = (remote?.stack ?? local).runtime;
if (args.has('--sim')) {
  injectLatency(rt.sts, AWS_LIKE.stsMs, AWS_LIKE.stsJitterMs);
  injectLatency(rt.ddb, AWS_LIKE.ddbMs, AWS_LIKE.ddbJitterMs);
}

let t0 = 0;
const marks: [string, number][] = [];
const mark = (name: string) => marks.push([name, performance.now() - t0]);
for (const [kind, client] of [['sts', rt.sts], ['ddb', rt.ddb]] as const) {
  const send = client.send.bind(client) as (command: object, ...rest: unknown[]) => Promise<unknown>;
  (client as { send: unknown }).send = async (command: object, ...rest: unknown[]) => {
    const base = `${kind} ${command.constructor.name.replace(/Command$/, '')}`;
    const name = `${base} #${marks.filter(([m]) => m.startsWith(base) && m.endsWith('sent')).length + 1}`;
    mark(`${name} sent`);
    try {
      return await send(command, ...rest);
    } finally {
      mark(`${name} answered`);
    }
  };
}
const decide = rt.policy.decide.bind(rt.policy);
let lastRequest: AuthzRequest | undefined;
rt.policy.decide = (request) => {
  lastRequest = request;
  mark('Cedar decision start');
  try {
    return decide(request);
  } finally {
    mark('Cedar decision end');
  }
};
const keys = rt.keys;
(rt as { keys: typeof keys }).keys = (issuer) => {
  const get = keys(issuer);
  return async (...a: Parameters<typeof get>) => {
    mark('token key asked');
    const key = await get(...a);
    mark('token key found');
    return key;
  };
};

const handler = createVendHandler(rt);
const tokens: string[] = [];
for (let i = 0; i < 64; i++) tokens.push(await local.issuer.mint({ sub: 'bench-phases', claims: { team: 'analytics' }, ttlSeconds: 3600 }));
const byMark = new Map<string, number[]>();
const warmup = Math.round(vends / 4);
for (let i = 0; i < warmup + vends; i++) {
  marks.length = 0;
  const event = httpEvent('POST /v1/vend', { headers: { authorization: `Bearer ${tokens[i % tokens.length]}` }, body: { grant: GRANT } });
  t0 = performance.now();
  const res = await handler(event);
  mark('answered');
  if (res.statusCode !== 200) throw new Error(`vend-phases: a vend answered ${res.statusCode}: ${res.body}`);
  if (i < warmup) continue;
  for (const [name, at] of marks) (byMark.get(name) ?? byMark.set(name, []).get(name)!).push(at);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`vend phases, ${vends} vends after ${warmup}; ${args.has('--sim') ? 'AWS latencies simulated' : 'local endpoints'}; services ${remote ? 'in their own process' : 'in this process'}; median ms from the handler's start`);
for (const [name, at] of [...byMark].sort((a, b) => median(a[1]) - median(b[1]))) console.log(`  ${name.padEnd(36)} ${median(at).toFixed(3)}`);

const tight: number[] = [];
for (let i = 0; i < 2000; i++) {
  const a = performance.now();
  decide(lastRequest!);
  tight.push(performance.now() - a);
}
const afterCall: number[] = [];
for (let i = 0; i < 300; i++) {
  await rt.leases.get('LNOSUCHLEASE');
  const a = performance.now();
  decide(lastRequest!);
  afterCall.push(performance.now() - a);
}
console.log(`  the vend's Cedar decision alone: ${median(tight).toFixed(3)} ms in a tight loop, ${median(afterCall).toFixed(3)} ms after one DynamoDB round trip each`);
await remote?.close();
await local.close();
rmSync(configDir, { recursive: true, force: true });
