/** `tvm dev`: the local stack in one process, until SIGINT or SIGTERM. */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { startLocalStack } from '../../local/stack.js';
import { ConfigError } from '../../functions/shared/load-config.js';
import { DEFAULT_DATA, EXIT, parse, Refusal, stackPointerFile, type StackPointer, untilStopped, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm dev [--config F] [--port N] [--data DIR] [--ephemeral]
  --config F     config file (default $TVM_CONFIG or config/tvm.yaml)
  --port N       API port (default 8787; STS/IAM on N+1, DynamoDB on N+2, S3 on N+3; 0 = any free ports)
  --data DIR     where leases, keys and the emulator's state are kept (default .tvm/dev)
  --ephemeral    keep leases, keys and emulator state in memory (endpoints.json goes to --data if
                 given, else to a fresh temporary folder)
`;

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string' },
    port: { type: 'string' },
    data: { type: 'string' },
    ephemeral: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return io.out(HELP), EXIT.ok;
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65532)) throw new UsageError('--port must be a port number');
  const configPath = values.config ?? io.env.TVM_CONFIG ?? 'config/tvm.yaml';
  // An ephemeral stack without a folder of its own gets a fresh one for its endpoints.json, so two
  // stacks never overwrite (or, stopping, delete) each other's file.
  const given = values.data ?? (io.env.TVM_DATA || undefined);
  const ownTemp = values.ephemeral && given === undefined ? mkdtempSync(join(tmpdir(), 'tvm-dev-')) : undefined;
  const dataDir = ownTemp ?? given ?? DEFAULT_DATA;
  let stack;
  try {
    stack = await startLocalStack({
      configPath,
      port,
      dataDir,
      ephemeral: values.ephemeral,
      logSink: (line) => io.out(`${line}\n`),
    });
  } catch (e) {
    if (ownTemp) rmSync(ownTemp, { recursive: true, force: true });
    if (e instanceof ConfigError) throw new Refusal(`invalid config:\n${e.message}`);
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Refusal(`a port is already in use (${(e as Error).message}); is tvm dev already running? try --port`);
    throw e;
  }
  const ep = stack.endpoints;
  const data = resolve(dataDir);
  const grant = stack.config.grants[0]?.name ?? 'GRANT';
  const envPrefix = data === `${process.cwd()}/.tvm/dev` ? '' : `TVM_DATA=${data} `;
  const rows: [string, string][] = [
    ['API', ep.api],
    ['dev issuer', ep.issuer],
    ['STS / IAM', ep.sts],
    ['S3', ep.s3],
    ['DynamoDB', ep.dynamodb],
    ...Object.entries(ep.vendors).map(([n, u]): [string, string] => [`vendor ${n}`, u]),
    ['console', `${stack.consoleUrl}   (one-time link; \`tvm console\` makes another)`],
    ['admin token', ep.adminToken],
    ['endpoints', stack.endpointsFile ?? '(not written)'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  io.out(`tvm dev is running${values.ephemeral ? ' (ephemeral)' : ` (data in ${data})`}

${rows.map(([k, v]) => `  ${k.padEnd(width)}${v}\n`).join('')}
Try, in another terminal:
  ${envPrefix}tvm token --claim team=analytics --out /tmp/tvm-token
  (umask 077 && rm -f ~/.tvm-creds && ${envPrefix}TVM_TOKEN_FILE=/tmp/tvm-token tvm vend --grant ${grant} --format env > ~/.tvm-creds) && . ~/.tvm-creds
  aws s3 cp s3://reports/analytics/q3.csv - --endpoint-url ${ep.s3} --region us-east-1   # allowed: the team's prefix
  ${envPrefix}tvm leases --status active
  ${envPrefix}TVM_TOKEN_FILE=/tmp/tvm-token tvm revoke $TVM_LEASE_ID   # then that s3 cp is AccessDenied
  aws sts get-caller-identity --endpoint-url ${ep.sts} --region us-east-1   # answers even when revoked, as in AWS
  curl -H "authorization: Bearer $(cat /tmp/tvm-token)" ${ep.api}/v1/broker/datadog/api/v1/validate
  ${envPrefix}tvm rotate datadog && ${envPrefix}tvm vendors

Stop with Ctrl-C.
`);
  const pointer = stackPointerFile(io.env);
  const mine: StackPointer = { data, pid: process.pid, api: ep.api };
  try {
    mkdirSync(dirname(pointer), { recursive: true, mode: 0o700 });
    writeFileSync(`${pointer}.${process.pid}.tmp`, `${JSON.stringify(mine)}\n`, { mode: 0o600 });
    renameSync(`${pointer}.${process.pid}.tmp`, pointer);
  } catch (e) {
    io.err(`tvm dev: cannot write ${pointer} (${(e as NodeJS.ErrnoException).code ?? 'failed'}); other folders will not find this stack\n`);
  }
  const why = await untilStopped();
  io.err(`tvm dev: stopping (${why})\n`);
  await stack.close();
  // The pointer goes only if it still names this stack (a later stack may have taken it over).
  try {
    const current = JSON.parse(readFileSync(pointer, 'utf8')) as StackPointer;
    if (current.data === mine.data && current.pid === mine.pid) rmSync(pointer, { force: true });
  } catch {
    // gone already, or never written
  }
  if (ownTemp) rmSync(ownTemp, { recursive: true, force: true });
  return EXIT.ok;
}
