/**
 * Starts the real local stack in-process for a test: ephemeral data, every port chosen by the OS,
 * every log line captured (for assertions and the secret scan).
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Clock } from '../../functions/core/ports.js';
import type { MintOptions } from '../../local/dev-issuer.js';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../local/stack.js';

export interface TestStackOptions {
  /** A config file to run (default config/tvm.yaml). */
  configPath?: string;
  /** Or: YAML text, written beside a copy of config/policies (or `policies`). */
  yaml?: string;
  /** Cedar files by name, replacing config/policies when `yaml` is given. */
  policies?: Record<string, string>;
  /** More files beside the config (path relative to it → text), e.g. a local S3 seed folder. */
  files?: Record<string, string>;
  clock?: Clock;
  jwks?: LocalStackOptions['jwks'];
  /** Keep state on disk in this folder (default: ephemeral, in memory). */
  dataDir?: string;
}

export interface TestStack {
  api: string;
  sts: string;
  /** The local S3. */
  s3: string;
  adminToken: string;
  stack: LocalStack;
  runtime: LocalStack['runtime'];
  /** Every log line the stack wrote, as JSON text. */
  logs: string[];
  /** A token from the dev issuer (default sub agent-1, claim team=analytics). */
  mintToken(claims?: Record<string, unknown>, opts?: Omit<MintOptions, 'claims'>): Promise<string>;
  /** POST /v1/vend with a fresh or given token. */
  vend(body: Record<string, unknown>, token?: string): Promise<{ status: number; body: Record<string, any> }>;
  close(): Promise<void>;
}

/** Writes `yaml` and its policies to a fresh folder and answers the config path. */
export function writeConfig(yaml: string, policies?: Record<string, string>, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'tvm-config-'));
  writeFileSync(join(dir, 'tvm.yaml'), yaml);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  if (policies) {
    mkdirSync(join(dir, 'policies'));
    for (const [name, text] of Object.entries(policies)) writeFileSync(join(dir, 'policies', name), text);
  } else {
    cpSync('config/policies', join(dir, 'policies'), { recursive: true });
  }
  // The example's local S3 seeds (local.buckets[].seed is relative to the config file).
  cpSync('config/local-s3', join(dir, 'local-s3'), { recursive: true });
  return join(dir, 'tvm.yaml');
}

export const EXAMPLE_CONFIG = readFileSync('config/tvm.yaml', 'utf8');

export async function startTestStack(opts: TestStackOptions = {}): Promise<TestStack> {
  const configPath = opts.yaml ? writeConfig(opts.yaml, opts.policies, opts.files) : (opts.configPath ?? 'config/tvm.yaml');
  const logs: string[] = [];
  const stack = await startLocalStack({ configPath, port: 0, ephemeral: !opts.dataDir, dataDir: opts.dataDir, logSink: (l) => logs.push(l), sweepIntervalMs: 0, rotateIntervalMs: 0, clock: opts.clock, jwks: opts.jwks });
  const api = stack.endpoints.api;
  const mintToken = (claims: Record<string, unknown> = { team: 'analytics' }, m: Omit<MintOptions, 'claims'> = {}) => stack.issuer.mint({ ...m, claims });
  return {
    api,
    sts: stack.endpoints.sts,
    s3: stack.endpoints.s3,
    adminToken: stack.endpoints.adminToken,
    stack,
    runtime: stack.runtime,
    logs,
    mintToken,
    async vend(body, token) {
      const res = await fetch(`${api}/v1/vend`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token ?? (await mintToken())}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    },
    close: () => stack.close(),
  };
}
