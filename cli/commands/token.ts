/** `tvm token`: mint a token from the running local dev issuer (loopback + the admin token). */
import { writeFileSync } from 'node:fs';
import { adminToken, call, EXIT, localEndpoints, parse, Refusal, refusalOf, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm token [--sub S] [--aud A] [--claim k=v …] [--ttl S] [--out FILE]
  --sub S        subject (default agent-1)
  --aud A        audience (default the dev issuer's first audience)
  --claim k=v    extra claim; repeatable; numbers and true/false are typed, k=[a,b] is a list
  --ttl S        lifetime in seconds (default 600)
  --out FILE     write the token to FILE without a trailing newline (for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
`;

function claimValue(v: string): unknown {
  if (/^-?\d+$/.test(v)) return Number(v);
  if (v === 'true' || v === 'false') return v === 'true';
  if (/^\[.*\]$/.test(v)) return v.slice(1, -1).split(',').filter(Boolean);
  return v;
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, {
    sub: { type: 'string' },
    aud: { type: 'string' },
    claim: { type: 'string', multiple: true },
    ttl: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return io.out(HELP), EXIT.ok;
  const claims: Record<string, unknown> = {};
  for (const c of values.claim ?? []) {
    const i = c.indexOf('=');
    if (i < 1) throw new UsageError(`--claim takes k=v, got '${c}'`);
    claims[c.slice(0, i)] = claimValue(c.slice(i + 1));
  }
  const ttlSeconds = values.ttl === undefined ? undefined : Number(values.ttl);
  if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 86400)) throw new UsageError('--ttl must be 1..86400 seconds');
  const ep = localEndpoints(io.env);
  if (!ep) throw new Refusal('the local stack is not running (start it with `npm start`)');
  const answer = await call(`${ep.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken(io.env)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ sub: values.sub, aud: values.aud, ttlSeconds, claims }),
  });
  if (answer.status !== 200) throw refusalOf(answer);
  const token = String(answer.body.token);
  if (values.out) writeFileSync(values.out, token, { mode: 0o600 });
  else io.out(`${token}\n`);
  return EXIT.ok;
}
