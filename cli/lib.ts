/**
 * What the subcommands share: the IO seam (tests pass their own), argument parsing with usage
 * errors, and where the running local stack is.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Endpoints } from '../local/stack.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  env: NodeJS.ProcessEnv;
}

export type Command = (args: string[], io: Io) => Promise<number>;

/** Exit codes of SPEC.md. */
export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

export class UsageError extends Error {}
/** A refusal or bad input: one line on stderr, exit 1. */
export class Refusal extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** What `tvm dev` writes to `<data>/endpoints.json`. */
export type LocalEndpoints = Endpoints;

/** Where `tvm dev` keeps its data unless told otherwise (relative to the repository root). */
export const DEFAULT_DATA = join('.tvm', 'dev');

/**
 * The per-user pointer to the last started local stack: `$XDG_STATE_HOME/tvm/local-stack.json`
 * (default `~/.local/state/tvm/…`), `{"data", "pid", "api"}`. It holds no secret: the admin token
 * stays in `<data>/endpoints.json` (0600).
 */
export function stackPointerFile(env: NodeJS.ProcessEnv): string {
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(state, 'tvm', 'local-stack.json');
}

export interface StackPointer {
  data: string;
  pid: number;
  api: string;
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * The data folder of the running local stack: `$TVM_DATA`; else the nearest `.tvm/dev` holding an
 * endpoints.json in this folder or one above it (so `cd docs && tvm leases` works); else the
 * folder the per-user pointer names (the last started stack, from anywhere).
 */
export function dataDir(env: NodeJS.ProcessEnv, cwd = process.cwd()): string {
  if (env.TVM_DATA) return resolve(cwd, env.TVM_DATA);
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, DEFAULT_DATA, 'endpoints.json'))) return join(dir, DEFAULT_DATA);
    if (dirname(dir) === dir) break;
  }
  const pointer = readJson<StackPointer>(stackPointerFile(env));
  if (pointer?.data && existsSync(join(pointer.data, 'endpoints.json'))) return pointer.data;
  return resolve(cwd, DEFAULT_DATA);
}

export function localEndpoints(env: NodeJS.ProcessEnv, cwd = process.cwd()): LocalEndpoints | undefined {
  return readJson<LocalEndpoints>(join(dataDir(env, cwd), 'endpoints.json'));
}

/** `--endpoint`, else `$TVM_ENDPOINT`, else the running local stack. */
export function endpoint(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const url = flag ?? env.TVM_ENDPOINT ?? localEndpoints(env)?.api;
  if (!url) throw new Refusal('no endpoint: pass --endpoint, set TVM_ENDPOINT, or start the local stack with `npm start`');
  return url.replace(/\/$/, '');
}

function isLoopback(hostname: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(hostname);
}

/**
 * Calls an admin route. Locally (or with `$TVM_ADMIN_TOKEN`): the admin token. Deployed: SigV4 with
 * the caller's AWS credentials (the SDK's default chain), as API Gateway's IAM authorization wants.
 * `$TVM_ADMIN_AUTH=sigv4|token` forces one.
 */
export async function adminCall(url: string, init: { method?: string; body?: string }, env: NodeJS.ProcessEnv): Promise<ApiAnswer> {
  const u = new URL(url);
  const method = init.method ?? 'GET';
  const headers: Record<string, string> = init.body ? { 'content-type': 'application/json' } : {};
  const mode = env.TVM_ADMIN_AUTH ?? (env.TVM_ADMIN_TOKEN || isLoopback(u.hostname) ? 'token' : 'sigv4');
  if (mode === 'token') return call(url, { method, body: init.body, headers: { ...headers, authorization: `Bearer ${adminToken(env)}` } });
  if (mode !== 'sigv4') throw new UsageError('TVM_ADMIN_AUTH is sigv4 or token');
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(u.hostname)?.[1];
  if (!region) throw new Refusal('set AWS_REGION to sign admin requests');
  const [{ SignatureV4 }, { Sha256 }, { fromNodeProviderChain }] = await Promise.all([
    import('@smithy/signature-v4'),
    import('@aws-crypto/sha256-js'),
    import('@aws-sdk/credential-providers'),
  ]);
  const signer = new SignatureV4({ service: 'execute-api', region, credentials: fromNodeProviderChain(), sha256: Sha256, uriEscapePath: true });
  let signed;
  try {
    signed = await signer.sign({
      method,
      protocol: u.protocol,
      hostname: u.hostname,
      port: u.port ? Number(u.port) : undefined,
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      headers: { ...headers, host: u.host },
      body: init.body,
    });
  } catch {
    throw new Refusal('no AWS credentials to sign the admin request (configure a profile or set AWS_* variables)');
  }
  const out = { ...(signed.headers as Record<string, string>) };
  delete out.host;
  return call(url, { method, body: init.body, headers: out });
}

export function adminToken(env: NodeJS.ProcessEnv): string {
  const token = env.TVM_ADMIN_TOKEN ?? localEndpoints(env)?.adminToken;
  if (!token) throw new Refusal('no admin credential: set TVM_ADMIN_TOKEN or start the local stack with `npm start`');
  return token;
}

/** The workload token: `--token-file`, else `$TVM_TOKEN`, else `$TVM_TOKEN_FILE`. */
export function workloadToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv): string {
  const file = tokenFile ?? (env.TVM_TOKEN ? undefined : env.TVM_TOKEN_FILE);
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      throw new Refusal(`cannot read the token file ${file}`);
    }
  }
  if (env.TVM_TOKEN) return env.TVM_TOKEN.trim();
  throw new Refusal('no token: pass --token-file, or set TVM_TOKEN or TVM_TOKEN_FILE');
}

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** Calls the API; a transport failure is a refusal naming the endpoint. */
export async function call(url: string, init: RequestInit): Promise<ApiAnswer> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  } catch {
    throw new Refusal(`cannot reach ${new URL(url).origin}`);
  }
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { message: text.slice(0, 200) };
  }
  return { status: res.status, body };
}

/** An error answer as one line: `access_denied: Access is denied. (request 1234)`. */
export function refusalOf(answer: ApiAnswer): Refusal {
  const { error, message, requestId } = answer.body as Record<string, string>;
  const line = `${error ?? `HTTP ${answer.status}`}: ${message ?? 'request failed'}${requestId ? ` (request ${requestId})` : ''}`;
  return new Refusal(printable(String(line)));
}

/**
 * Text from tokens and requests (a `sub`, a reason) made safe to print: control characters
 * (C0, DEL, C1, and the bidi overrides) shown as `\u{…}` escapes.
 */
export function printable(s: string): string {
  return s.replace(UNPRINTABLE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

const UNPRINTABLE = /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** A POSIX shell word that is exactly `s` when sourced: single-quoted, each `'` as `'\''`. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * JSON for a terminal: `JSON.stringify` escapes C0 controls but leaves DEL, C1 (`\u009b` is a
 * CSI) and bidi controls raw; this writes them as `\uXXXX` too, so the text is the same JSON.
 */
export function jsonText(value: unknown, space?: number): string {
  // C0 inside strings is already escaped; outside them JSON holds only its own newlines.
  return JSON.stringify(value, null, space).replace(/[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

/**
 * Resolves on SIGINT or SIGTERM, or once the parent process is gone. Under `npm start`, npm hands
 * SIGTERM to `sh`, which may exit without passing it on: the server would be orphaned (re-parented)
 * and keep its ports. A changed `process.ppid` is that case.
 */
export function untilStopped(): Promise<string> {
  const parent = process.ppid;
  return new Promise((resolve) => {
    const done = (why: string) => {
      clearInterval(watch);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(why);
    };
    const onInt = () => done('SIGINT');
    const onTerm = () => done('SIGTERM');
    const watch = setInterval(() => {
      if (process.ppid !== parent) done('its parent process exited');
    }, 500);
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}
