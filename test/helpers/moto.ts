/**
 * moto (`moto_server`), an AWS emulator nobody here wrote, on a free loopback port: the
 * independent reference tvm's adapters are checked against. One server per test file.
 *
 * With `TVM_MOTO_ENDPOINT` set (scripts/mutation.mjs: one moto_server for a whole Stryker run, whose
 * test files run one at a time), `startMoto()` resets that server instead of starting one, so each
 * file still begins with an empty moto; its `close()` leaves the server running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { needTool } from './tools.js';

export const hasMoto = (why = 'moto conformance') => needTool('moto_server', why);

export interface Moto {
  /** `http://127.0.0.1:PORT` — pass as `endpoint` to any SDK client. */
  endpoint: string;
  /** Forget every resource (moto's own reset route). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Credentials moto accepts; moto derives no account from them (every call is account 123456789012). */
export const MOTO_CREDENTIALS = { accessKeyId: 'AKIAMOTOTESTKEY00001', secretAccessKey: 'moto-secret' };
export const MOTO_ACCOUNT = '123456789012';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function resetMoto(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!res.ok) throw new Error(`moto reset answered ${res.status}`);
}

export async function startMoto(): Promise<Moto> {
  const shared = process.env.TVM_MOTO_ENDPOINT;
  if (shared) {
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(shared)) throw new Error(`TVM_MOTO_ENDPOINT must be http://127.0.0.1:PORT, not ${shared}`);
    await resetMoto(shared);
    return { endpoint: shared, reset: () => resetMoto(shared), close: async () => {} };
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
  });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode}): ${stderr}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/`);
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto_server did not start on ${endpoint}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    reset: () => resetMoto(endpoint),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
