/** `tvm dev`: the local stack in one process, until SIGINT or SIGTERM. */
import { resolve } from 'node:path';
import { startLocalStack } from '../../local/stack.js';
import { ConfigError } from '../../functions/shared/load-config.js';
import { EXIT, parse, Refusal, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm dev [--config F] [--port N] [--data DIR] [--ephemeral]
  --config F     config file (default $TVM_CONFIG or config/tvm.yaml)
  --port N       API port (default 8787; STS/IAM on N+1, DynamoDB on N+2; 0 = any free ports)
  --data DIR     where leases, keys and the emulator's state are kept (default .tvm/dev)
  --ephemeral    keep leases, keys and emulator state in memory (endpoints.json is still written)
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
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65533)) throw new UsageError('--port must be a port number');
  const configPath = values.config ?? io.env.TVM_CONFIG ?? 'config/tvm.yaml';
  const dataDir = values.data ?? io.env.TVM_DATA ?? '.tvm/dev';
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
    ['DynamoDB', ep.dynamodb],
    ...Object.entries(ep.vendors).map(([n, u]): [string, string] => [`vendor ${n}`, u]),
    ['admin token', ep.adminToken],
    ['endpoints', stack.endpointsFile ?? '(not written)'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  io.out(`tvm dev is running${values.ephemeral ? ' (ephemeral)' : ` (data in ${data})`}

${rows.map(([k, v]) => `  ${k.padEnd(width)}${v}\n`).join('')}
Try, in another terminal:
  ${envPrefix}npx tvm token --claim team=analytics --out /tmp/tvm-token
  ${envPrefix}TVM_TOKEN_FILE=/tmp/tvm-token npx tvm vend --grant ${grant} --format env > /tmp/tvm-creds && . /tmp/tvm-creds
  aws sts get-caller-identity --endpoint-url ${ep.sts} --region us-east-1
  ${envPrefix}npx tvm leases --status active
  ${envPrefix}TVM_TOKEN_FILE=/tmp/tvm-token npx tvm revoke $TVM_LEASE_ID   # then get-caller-identity is denied
  curl -H "authorization: Bearer $(cat /tmp/tvm-token)" ${ep.api}/v1/broker/datadog/api/v1/validate
  ${envPrefix}npx tvm rotate datadog && ${envPrefix}npx tvm vendors

Stop with Ctrl-C.
`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  io.err('tvm dev: stopping\n');
  await stack.close();
  return EXIT.ok;
}
