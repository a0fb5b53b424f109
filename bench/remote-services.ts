/**
 * The parent side of bench/services.ts: starts the bench's AWS in its own process (pinned to the
 * last CPU where taskset exists and there are two or more) and answers a view of the local stack
 * whose endpoints and runtime reach it instead of the in-process emulators. The issuer, the
 * config and the API server stay the stack's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { createLogger } from '../functions/shared/logger.js';
import { memoryMetrics } from '../functions/shared/metrics.js';
import { createRuntime } from '../functions/shared/runtime.js';
import { TABLE, type LocalStack } from '../local/stack.js';
import type { BenchServices } from './services.js';

export interface RemoteServices {
  /** The stack with `endpoints.dynamodb/sts/iam` and `runtime` pointing at the services process. */
  stack: LocalStack;
  /** The CPU the services process is pinned to, or null when it is not pinned. */
  cpu: number | null;
  pid: number;
  close(): Promise<void>;
}

export async function startRemoteServices(stack: LocalStack, configPath: string): Promise<RemoteServices> {
  const last = cpus().length - 1;
  const cpu = existsSync('/usr/bin/taskset') && last >= 1 ? last : null;
  const node = [process.execPath, '--import', 'tsx', 'bench/services.ts'];
  const child: ChildProcess = cpu === null ? spawn(node[0], node.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn('/usr/bin/taskset', ['-c', String(cpu), ...node], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const credentials = stack.runtime.settings.credentials!;
  child.stdin!.write(JSON.stringify({ configPath, credentials }) + '\n');
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => (rl.close(), resolve(line)));
    child.once('exit', (code) => reject(new Error(`bench services: exited ${code} before answering`)));
  });
  const services = JSON.parse(first) as BenchServices;
  const runtime = createRuntime({
    config: stack.config,
    table: TABLE,
    dynamodbEndpoint: services.dynamodb,
    stsEndpoint: services.sts,
    iamEndpoint: services.iam,
    credentials,
    logger: createLogger({ sink: () => {} }),
    metrics: memoryMetrics(),
  });
  const view: LocalStack = { ...stack, endpoints: { ...stack.endpoints, ...services }, runtime };
  return {
    stack: view,
    cpu,
    pid: child.pid!,
    close: async () => {
      runtime.ddb.destroy();
      runtime.sts.destroy();
      runtime.iam.destroy();
      child.stdin!.end();
      await exited;
    },
  };
}
