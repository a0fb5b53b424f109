/**
 * `tvm dev`: the whole service in one process — the HTTP API over the real handlers, embedded
 * DynamoDB, the STS/IAM emulator, the dev OIDC issuer, vendor fakes, and the sweep and rotation
 * schedules on short intervals.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { TvmConfig } from '../functions/core/config.js';
import type { Clock } from '../functions/core/ports.js';
import type { JwksOptions } from '../functions/adapters/jwks-keys.js';
import { createLeasesHandler } from '../functions/leases/handler.js';
import { createSweepHandler } from '../functions/sweep/handler.js';
import { loadConfig } from '../functions/shared/load-config.js';
import { createLogger } from '../functions/shared/logger.js';
import { memoryMetrics } from '../functions/shared/metrics.js';
import { createRuntime, type Runtime } from '../functions/shared/runtime.js';
import { createVendHandler } from '../functions/vend/handler.js';
import { createBrokerHandler } from '../functions/broker/handler.js';
import { createRotateHandler } from '../functions/rotate/handler.js';
import { localVendorSettings, seedVendorKeys, startVendorFakes } from './vendor-fakes/index.js';
import { createDevIssuer, DEV_ISSUER_PATH, type DevIssuer } from './dev-issuer.js';
import { ensureTable, startDynalite } from './dynamo.js';
import { createLocalAuditLog } from './audit-log.js';
import { type LocalHandler, startLocalServer } from './server.js';
import { type ConsoleGate, createConsoleGate } from '../console/gate.js';
import { startLocalS3 } from './s3.js';
import { type EmulatorRoleConfig, startStsIamEmulator } from './sts-iam-emulator.js';

export const DEFAULT_PORT = 8787;
export const TABLE = 'tvm';
/** tvm's own account on the local stack when the config names none. */
export const LOCAL_ACCOUNT = '123456789012';

export interface LocalStackOptions {
  configPath: string;
  /** The API port (default 8787; STS/IAM on port+1, DynamoDB on port+2, S3 on port+3). 0: every port ephemeral. */
  port?: number;
  /** Data folder (default .tvm/dev). With `ephemeral`, only endpoints.json is written there (if given). */
  dataDir?: string;
  /** Keep leases, keys and emulator state in memory only. */
  ephemeral?: boolean;
  /** Every log line, as JSON text. Default: stdout. */
  logSink?: (line: string) => void;
  /** Interval of the local sweep; 0 disables it (tests drive it). */
  sweepIntervalMs?: number;
  rotateIntervalMs?: number;
  /** Test hook: the clock the handlers and the emulator use. */
  clock?: Clock;
  /** JWKS cache settings (default: 1 s cooldown, 5 s timeout). */
  jwks?: JwksOptions;
}

export interface Endpoints {
  api: string;
  dynamodb: string;
  sts: string;
  iam: string;
  /** The local S3 (path-style). */
  s3: string;
  issuer: string;
  adminToken: string;
  /** The ARN of tvm's own local identity: what a local role's `trustPolicy` names to trust tvm. */
  identity: string;
  vendors: Record<string, string>;
}

export interface LocalStack {
  endpoints: Endpoints;
  endpointsFile?: string;
  runtime: Runtime;
  issuer: DevIssuer;
  config: Readonly<TvmConfig>;
  metrics: ReturnType<typeof memoryMetrics>;
  /** The ops console served at `/console`: `issueCode()` makes a one-time link (`consoleUrl`). */
  console: ConsoleGate;
  /** The one-time console link printed in the banner (not written to endpoints.json: it is a credential). */
  consoleUrl: string;
  /** How many STS sessions the emulator has issued (tests: "no STS call"). */
  sessionCount(): number;
  /** The emulator's sessions of one role (tests: "this went through that role"). */
  sessionsOf(roleArn: string): { sessionName: string; issuedAt: number }[];
  close(): Promise<void>;
}

interface LocalSecrets {
  adminToken: string;
  accessKeyId: string;
  secretAccessKey: string;
}

function localSecrets(dataDir: string | undefined): LocalSecrets {
  const file = dataDir && join(dataDir, 'local-secrets.json');
  if (file && existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as LocalSecrets;
  const secrets: LocalSecrets = {
    adminToken: `tvm-admin-${randomBytes(24).toString('base64url')}`,
    accessKeyId: `AKIATVMLOCAL${randomBytes(4).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(30).toString('base64'),
  };
  if (file) writeFileSync(file, JSON.stringify(secrets), { mode: 0o600 });
  return secrets;
}

/**
 * Runs `task` every `ms` as EventBridge Scheduler would, never two at once; answers the stopper.
 * A failing run is logged and the schedule goes on.
 */
export function every(ms: number, task: () => Promise<unknown>, rt: Pick<Runtime, 'logger'>): () => Promise<void> {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout;
  const tick = () => {
    running = task()
      .catch((e) => rt.logger.error('scheduled run failed', { error: (e as Error)?.message }))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, ms);
      });
  };
  timer = setTimeout(tick, ms);
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}

const stdoutLine = (line: string) => void process.stdout.write(`${line}\n`);

function writeJsonAtomic(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The config as `tvm dev` runs it: the dev issuer at its real URL, vendors at their fakes. */
/** The STS/IAM emulator's account and roles for a config (the local stack's, and the bench's services process). */
export function emulatorAccount(fileConfig: Readonly<TvmConfig>): { accountId: string; roles: Record<string, EmulatorRoleConfig> } {
  // A grant's role without a local permission policy may do nothing (but can be assumed).
  const roles: Record<string, EmulatorRoleConfig> = {};
  for (const g of fileConfig.grants) roles[g.roleArn] = { Version: '2012-10-17', Statement: [] };
  for (const [arn, role] of Object.entries(fileConfig.local?.roles ?? {})) roles[arn] = role;
  // tvm's own account (SPEC: `account`, default 123456789012 locally), whatever account the first role is in.
  return { accountId: (fileConfig as { account?: string }).account ?? LOCAL_ACCOUNT, roles };
}

export function localConfig(config: Readonly<TvmConfig>, issuerUrl: string, vendorUrls: Record<string, string>): TvmConfig {
  const devIssuer = config.local?.devIssuer;
  return {
    ...config,
    issuers: config.issuers.map((i) => (i.name === devIssuer ? { ...i, issuer: issuerUrl, jwksUri: undefined } : i)),
    vendors: config.vendors.map((v) => (vendorUrls[v.name] ? { ...v, baseUrl: vendorUrls[v.name] } : v)),
  };
}

export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const fileConfig = loadConfig(opts.configPath);
  const dataDir = opts.ephemeral ? undefined : resolve(opts.dataDir ?? '.tvm/dev');
  const endpointsDir = opts.ephemeral ? opts.dataDir && resolve(opts.dataDir) : dataDir;
  if (endpointsDir) mkdirSync(endpointsDir, { recursive: true });
  const endpointsFile = endpointsDir && join(endpointsDir, 'endpoints.json');
  const secrets = localSecrets(dataDir);
  const basePort = opts.port ?? DEFAULT_PORT;
  const portFor = (offset: number) => (basePort === 0 ? 0 : basePort + offset);
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };

  try {
    const handlers: Record<string, LocalHandler> = {};
    let issuer: DevIssuer | undefined;
    let gate: ConsoleGate | undefined;
    const server = await startLocalServer({ port: basePort, handlers, adminToken: secrets.adminToken, issuer: () => issuer, console: () => gate });
    closers.push(() => server.close());
    // The console calls the admin routes through this same server with the admin token, which
    // stays in this process: the browser holds only a console session cookie.
    gate = createConsoleGate({
      adminToken: secrets.adminToken,
      forward: async ({ method, path, body }) => {
        const res = await fetch(`${server.url}${path}`, {
          method,
          body,
          headers: { authorization: `Bearer ${secrets.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        });
        const text = await res.text();
        return { status: res.status, body: text ? (JSON.parse(text) as unknown) : {} };
      },
    });
    closers.push(async () => {
      // A stopped stack must not leave a file that sends clients to dead ports.
      if (endpointsFile) rmSync(endpointsFile, { force: true });
    });
    const issuerUrl = `${server.url}${DEV_ISSUER_PATH}`;
    const devIssuerConfig = fileConfig.issuers.find((i) => i.name === fileConfig.local?.devIssuer);
    issuer = await createDevIssuer({ url: issuerUrl, dataDir, defaultAudience: devIssuerConfig?.audiences[0] ?? 'tvm' });

    const dynamo = await startDynalite({ port: portFor(2), path: dataDir && join(dataDir, 'dynamodb') });
    closers.push(() => dynamo.close());
    const creds = { accessKeyId: secrets.accessKeyId, secretAccessKey: secrets.secretAccessKey };
    const ddbClient = new DynamoDBClient({ region: 'us-east-1', endpoint: dynamo.endpoint, credentials: creds });
    await ensureTable(ddbClient, TABLE);
    ddbClient.destroy();

    const emulator = await startStsIamEmulator({
      port: portFor(1),
      ...emulatorAccount(fileConfig),
      callerCredentials: creds,
      now: opts.clock ? () => opts.clock!.now() : undefined,
      stateFile: dataDir && join(dataDir, 'sts-iam-state.json'),
    });
    closers.push(() => emulator.close());
    const configDir = dirname(resolve(opts.configPath));
    const s3 = await startLocalS3({
      port: portFor(3),
      buckets: (fileConfig.local?.buckets ?? []).map((b) => (typeof b === 'string' ? { name: b } : { name: b.name, seed: resolve(configDir, b.seed) })),
      authority: emulator.authority,
      dataDir: dataDir && join(dataDir, 's3'),
    });
    closers.push(() => s3.close());

    // ---- vendor keys (issue 4): a fake per vendor, the embedded secret store (under the data
    // folder) with each management credential seeded from its fake ----
    const vendorFakes = await startVendorFakes(fileConfig.vendors, { dataDir });
    closers.push(() => vendorFakes.close());
    const vendorUrls: Record<string, string> = vendorFakes.urls;
    const vendorSettings = await localVendorSettings(fileConfig.vendors, vendorFakes, { dataDir });
    // ---- end vendor keys ----
    const config = Object.freeze(localConfig(fileConfig, issuerUrl, vendorUrls));
    const metrics = memoryMetrics();
    const auditLog = createLocalAuditLog(dataDir && join(dataDir, 'audit.ndjson'));
    const runtime = createRuntime({
      config,
      table: TABLE,
      dynamodbEndpoint: dynamo.endpoint,
      stsEndpoint: emulator.url,
      iamEndpoint: emulator.url,
      credentials: creds,
      logger: createLogger({ sink: (line) => (auditLog.add(line), (opts.logSink ?? stdoutLine)(line)) }),
      events: auditLog,
      metrics,
      clock: opts.clock,
      // Locally the dev issuer's keys never change mid-run; a short cooldown keeps tests of key rotation quick.
      jwks: { cooldownSeconds: 1, ...opts.jwks },
      vendors: vendorSettings,
    });
    closers.push(async () => {
      runtime.ddb.destroy();
      runtime.sts.destroy();
      runtime.iam.destroy();
    });
    handlers.vend = createVendHandler(runtime);
    handlers.leases = createLeasesHandler(runtime);
    handlers.sweep = createSweepHandler(runtime);
    const sweepEvery = opts.sweepIntervalMs ?? 5000;
    if (sweepEvery > 0) closers.push(every(sweepEvery, () => handlers.sweep({ source: 'tvm.local.schedule' } as never), runtime));

    // ---- vendor keys (issue 4): broker and rotate handlers; the first rotation run creates each
    // vendor's first key at its fake (later starts settle and rotate what is due) ----
    const rotate = createRotateHandler(runtime);
    handlers.broker = createBrokerHandler(runtime);
    handlers.rotate = rotate as LocalHandler;
    await seedVendorKeys(runtime);
    const rotateEvery = opts.rotateIntervalMs ?? 30_000;
    if (rotateEvery > 0 && fileConfig.vendors.length > 0) {
      closers.push(every(rotateEvery, () => rotate({ source: 'tvm.local', 'detail-type': 'Scheduled Event' }), runtime));
    }
    // ---- end vendor keys ----

    const endpoints: Endpoints = {
      api: server.url,
      dynamodb: dynamo.endpoint,
      sts: emulator.url,
      iam: emulator.url,
      s3: s3.url,
      issuer: issuerUrl,
      adminToken: secrets.adminToken,
      identity: emulator.identityArn,
      vendors: vendorUrls,
    };
    if (endpointsFile) writeJsonAtomic(endpointsFile, endpoints);
    const consoleUrl = `${server.url}/console?code=${gate.issueCode()}`;
    return { endpoints, endpointsFile, runtime, issuer, config, metrics, console: gate, consoleUrl, sessionCount: () => emulator.sessionCount(), sessionsOf: (arn) => emulator.sessionsOf(arn), close };
  } catch (e) {
    await close();
    throw e;
  }
}
