/**
 * What deploys is what was tested: one synthesis of the stack with the real functions, then each
 * function's asset from cdk.out loaded as the Lambda Node.js runtime loads it (a read-only copy,
 * a fresh node with only the template's environment, resolved, plus credentials and the SDK's
 * standard AWS_ENDPOINT_URL_* variables pointing at loopback) and invoked with real events:
 * the local stack's DynamoDB, STS/IAM emulator, dev issuer and vendor fakes; moto's Secrets
 * Manager for the vendor key secrets.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateSecretCommand, DescribeSecretCommand, GetSecretValueCommand, RotateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AWSCURRENT } from '../../functions/core/vendor-ports.js';
import { vendorRuntime } from '../../functions/shared/vendor-runtime.js';
import { FUNCTION_NAMES, USES_CEDAR, type FunctionName } from '../../infra/constructs/token-vending-machine.js';
import type { TvmStack } from '../../infra/tvm-stack.js';
import { startLocalStack, TABLE, type LocalStack } from '../../local/stack.js';
import { httpEvent } from '../helpers/events.js';
import { s3Get } from '../helpers/s3.js';
import { functionAsset, loadBundle, PSEUDO_REFS, type CfnTemplate, type LoadedBundle } from '../helpers/lambda-bundle.js';
import { hasMoto, startMoto, type Moto } from '../helpers/moto.js';
import { buildStack, FIXTURES } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ACCOUNT = '123456789012';
const REGION = 'us-east-1';
/** Never in a Lambda bundle: the emulator's AGPL policy engine and the local stack. */
const FORBIDDEN = [/@cloud-copilot[/\\]/, /iam-simulate/, /iam-data/, /(^|[/\\])local[/\\]/];
const withMoto = hasMoto('bundles: the rotate and broker bundles against moto Secrets Manager');

let local: LocalStack;
let moto: Moto | undefined;
let stack: TvmStack;
let template: CfnTemplate;
let outdir: string;
/** Logical id (or `id.Attr`, `AWS::…`) → what it is on loopback. */
const refs: Record<string, string> = { ...PSEUDO_REFS };
const open: LoadedBundle[] = [];

beforeAll(async () => {
  local = await startLocalStack({ configPath: join(ROOT, 'config', 'tvm.yaml'), port: 0, ephemeral: true, sweepIntervalMs: 0, rotateIntervalMs: 0, logSink: () => undefined });
  if (withMoto) moto = await startMoto();
  // The example config as the local stack runs it (the dev issuer at its live URL, vendors at
  // their fakes), minus the local section: what synth bundles, pointed at loopback.
  const { local: _local, ...config } = local.config;
  outdir = mkdtempSync(join(tmpdir(), 'tvm-cdk-out-'));
  ({ stack } = buildStack({ config, functionsDir: join(ROOT, 'functions') }, { bundle: true, outdir }));
  template = Template.fromStack(stack).toJSON() as typeof template; // the one synthesis: bundles every function, runs cdk-nag
  for (const [id, r] of Object.entries(template.Resources)) if (r.Type === 'AWS::DynamoDB::Table') refs[id] = TABLE;
  // Log groups (the leases function queries the others' for the audit trail): a Ref is the group's name.
  for (const [id, r] of Object.entries(template.Resources)) if (r.Type === 'AWS::Logs::LogGroup') refs[id] = `/aws/lambda/tvm-${id}`;
  if (moto) {
    const sm = secretsManager();
    const vr = vendorRuntime(local.runtime);
    for (const [id, r] of Object.entries(template.Resources)) {
      if (r.Type !== 'AWS::SecretsManager::Secret') continue;
      // The management secrets hold what an operator put there (the fake's credential); the key
      // secrets start as the template creates them.
      const vendor = config.vendors.find((v) => id.includes(`Vendor${pascal(v.name)}Management`));
      const management = vendor && (await vr.secrets.getValue(vr.secretIds[vendor.name].management, { stage: AWSCURRENT }))?.value;
      const initial = r.Properties.SecretString ?? (r.Properties.GenerateSecretString ? `placeholder-${id}` : undefined);
      const made = await sm.send(new CreateSecretCommand({ Name: `tvm-${id}`, SecretString: management ?? initial }));
      refs[id] = made.ARN!;
    }
  }
}, 300_000);

afterAll(async () => {
  for (const b of open) await b.close();
  await moto?.close();
  await local?.close();
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

function pascal(name: string): string {
  return name.split(/[^a-zA-Z0-9]+/).filter(Boolean).map((p) => p[0].toUpperCase() + p.slice(1)).join('');
}

function secretsManager() {
  return new SecretsManagerClient({ region: REGION, endpoint: moto!.endpoint, credentials: local.runtime.settings.credentials });
}

function asset(name: FunctionName) {
  return functionAsset(template, outdir, stack.getLogicalId(stack.tvm.functions[name].node.defaultChild as CfnFunction), refs);
}

function assetDir(name: FunctionName): string {
  return asset(name).dir;
}

/** Exactly the environment the template gives the function, resolved, plus what Lambda and the test add. */
function lambdaEnv(name: FunctionName, extra: Record<string, string> = {}): Record<string, string> {
  const creds = local.runtime.settings.credentials!;
  return {
    ...asset(name).env,
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_LAMBDA_FUNCTION_NAME: `tvm-${name}`,
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: local.endpoints.dynamodb,
    AWS_ENDPOINT_URL_STS: local.endpoints.sts,
    AWS_ENDPOINT_URL_IAM: local.endpoints.iam,
    ...(moto ? { AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint } : {}),
    ...extra,
  };
}

async function load(name: FunctionName, extra?: Record<string, string>): Promise<LoadedBundle> {
  const b = await loadBundle(assetDir(name), lambdaEnv(name, extra));
  open.push(b);
  return b;
}

function sourcesOf(name: FunctionName): string[] {
  return (JSON.parse(readFileSync(join(assetDir(name), 'index.js.map'), 'utf8')) as { sources: string[] }).sources;
}

/** Secrets Manager's four steps on `token`, as it invokes the rotation Lambda; then `token` holds the current, tested key. */
async function fourSteps(rotate: LoadedBundle, secretId: string, token: string): Promise<void> {
  for (const Step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) {
    const r = await rotate.invoke({ SecretId: secretId, ClientRequestToken: token, Step });
    expect({ Step, ...r }).toEqual({ Step, ok: true, result: null });
  }
  const current = await secretsManager().send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: AWSCURRENT }));
  expect(current.VersionId).toBe(token);
  expect(JSON.parse(current.SecretString!)).toEqual({ keyId: expect.any(String), key: expect.any(String) });
}

const token = (sub: string) => local.issuer.mint({ sub, claims: { team: 'analytics' } });
const bearer = async (sub: string) => ({ authorization: `Bearer ${await token(sub)}` });

describe('what each bundle carries', () => {
  it.each(FUNCTION_NAMES)('%s: index.js (CommonJS), its source map and the bundled config; the .wasm only where Cedar decides', (name) => {
    const files = readdirSync(assetDir(name)).sort();
    expect(files).toEqual(expect.arrayContaining(['index.js', 'index.js.map', 'tvm-config.json']));
    expect(files.includes('cedar_wasm_bg.wasm')).toBe(USES_CEDAR.includes(name));
    const js = readFileSync(join(assetDir(name), 'index.js'), 'utf8');
    expect(js).not.toMatch(/^import |^export /m);
  });

  it.each(FUNCTION_NAMES)('%s: nothing from the local stack or the AGPL emulator engine; the AWS SDK bundled', (name) => {
    const sources = sourcesOf(name);
    expect(sources.filter((s) => FORBIDDEN.some((re) => re.test(s)))).toEqual([]);
    expect(sources.some((s) => s.includes('@aws-sdk/'))).toBe(true);
  });

  it('each function composes only what it uses: no IAM client or YAML parser in vend, no Cedar in sweep or rotate', () => {
    const has = (name: FunctionName, re: RegExp) => sourcesOf(name).some((s) => re.test(s));
    const iam = /@aws-sdk[/\\]client-iam[/\\]/;
    const yaml = /node_modules[/\\]yaml[/\\]/;
    const cedar = /@cedar-policy[/\\]cedar-wasm/;
    const sts = /@aws-sdk[/\\]client-sts[/\\]/;
    const secrets = /@aws-sdk[/\\]client-secrets-manager[/\\]/;
    expect(FUNCTION_NAMES.filter((n) => has(n, yaml))).toEqual([]);
    expect(FUNCTION_NAMES.filter((n) => has(n, iam))).toEqual(['leases', 'sweep']);
    // leases and sweep assume other accounts' revoker roles.
    expect(FUNCTION_NAMES.filter((n) => has(n, sts))).toEqual(['vend', 'leases', 'sweep']);
    expect(FUNCTION_NAMES.filter((n) => has(n, cedar))).toEqual([...USES_CEDAR]);
    expect(FUNCTION_NAMES.filter((n) => has(n, secrets))).toEqual(['broker', 'rotate']);
  });

  it('the bundled config carries no path of the build machine', () => {
    for (const name of FUNCTION_NAMES) {
      const text = readFileSync(join(assetDir(name), 'tvm-config.json'), 'utf8');
      expect(text).not.toContain(ROOT);
      expect(text).not.toContain(tmpdir());
      expect(text).not.toMatch(/"(source|file)":"\//);
    }
  });

  it('the forbidden-content check catches a handler that imports the emulator policy engine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tvm-agpl-'));
    try {
      await build({ entryPoints: [join(FIXTURES, 'agpl', 'handler.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node24', sourcemap: true, outfile: join(dir, 'index.js'), logLevel: 'silent' });
      const sources = (JSON.parse(readFileSync(join(dir, 'index.js.map'), 'utf8')) as { sources: string[] }).sources;
      expect(sources.some((s) => FORBIDDEN.some((re) => re.test(s)))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bundles run as Lambda runs them', () => {
  it('a bad config fails the init, logged, instead of every request', async () => {
    const err = await loadBundle(assetDir('vend'), lambdaEnv('vend', { TVM_CONFIG: 'missing.json' })).catch((e) => e as Error & { logs: string[] });
    expect(err).toBeInstanceOf(Error);
    const lines = (err as { logs: string[] }).logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'ERROR', message: 'init failed', function: 'vend' }));
  });

  it('vend: a token from the issuer returns credentials that STS knows as the grant role', async () => {
    const vend = await load('vend');
    const answer = await vend.invoke(httpEvent('POST /v1/vend', { headers: await bearer('bundle-vend'), body: { grant: 'reports-read' } }));
    expect(answer.ok).toBe(true);
    expect(answer.result.statusCode).toBe(200);
    const body = JSON.parse(answer.result.body);
    expect(body.credentials.AccessKeyId).toMatch(/^ASIA/);
    const sts = new STSClient({
      region: REGION,
      endpoint: local.endpoints.sts,
      credentials: { accessKeyId: body.credentials.AccessKeyId, secretAccessKey: body.credentials.SecretAccessKey, sessionToken: body.credentials.SessionToken },
    });
    const who = await sts.send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toContain(':assumed-role/reports-read/');
    // The local S3 accepts them within the session policy's prefix (the token's team) only.
    expect(await s3Get(local.endpoints.s3, body.credentials, '/reports/analytics/q3.csv')).toMatchObject({ status: 200 });
    expect(await s3Get(local.endpoints.s3, body.credentials, '/reports/finance/q3.csv')).toMatchObject({ status: 403, code: 'AccessDenied' });
    expect((await local.runtime.leases.get(body.leaseId))?.status).toBe('active');
    // Without a token: a decision, a 401, in the envelope.
    const refused = await vend.invoke(httpEvent('POST /v1/vend', { body: { grant: 'reports-read' } }));
    expect(refused.result.statusCode).toBe(401);
  });

  it('leases: the principal reads and revokes its lease; the deny lands on the role', async () => {
    const vend = await load('vend');
    const leases = await load('leases');
    const headers = await bearer('bundle-leases');
    const vended = JSON.parse((await vend.invoke(httpEvent('POST /v1/vend', { headers, body: { grant: 'reports-read' } }))).result.body);
    const read = await leases.invoke(httpEvent('GET /v1/leases/{id}', { headers: await bearer('bundle-leases'), pathParameters: { id: vended.leaseId } }));
    expect(read.result.statusCode).toBe(200);
    const revoked = await leases.invoke(httpEvent('POST /v1/leases/{id}/revoke', { headers: await bearer('bundle-leases'), pathParameters: { id: vended.leaseId } }));
    expect(revoked.result.statusCode).toBe(200);
    expect(JSON.parse(revoked.result.body).status).toBe('revoked');
    expect((await local.runtime.leases.get(vended.leaseId))?.status).toBe('revoked');
  });

  it('sweep: a scheduled event and the admin route both answer the report', async () => {
    const sweep = await load('sweep');
    const scheduled = await sweep.invoke({ version: '0', source: 'aws.scheduler', 'detail-type': 'Scheduled Event', detail: {} });
    expect(scheduled.ok).toBe(true);
    expect(scheduled.result).toEqual(expect.objectContaining({ expired: expect.any(Number) }));
    const admin = await sweep.invoke(httpEvent('POST /v1/admin/sweep', { admin: true }));
    expect(admin.result.statusCode).toBe(200);
  });

  it.runIf(withMoto)('rotate: the four steps against moto Secrets Manager, then the broker bundle uses the new key', async () => {
    const rotate = await load('rotate');
    const secretId = refs[Object.keys(refs).find((id) => id.includes('VendorDatadogKey') && !id.includes('Rotation'))!];
    const pending = randomUUID();
    await fourSteps(rotate, secretId, pending);

    const broker = await load('broker');
    const call = await broker.invoke({
      ...httpEvent('GET /v1/broker/{vendor}/{proxy+}', { headers: await bearer('bundle-broker'), pathParameters: { vendor: 'datadog', proxy: 'api/v1/validate' } }),
      rawPath: '/v1/broker/datadog/api/v1/validate',
    });
    expect(call.result.statusCode).toBe(200);
  });

  it.runIf(withMoto)('rotate: driven the way RotateSecret drives it (an empty AWSPENDING version first), the four steps end with a tested key current', async () => {
    const rotate = await load('rotate');
    const sm = secretsManager();
    const secretId = refs[Object.keys(refs).find((id) => id.includes('VendorOpenaiKey') && !id.includes('Rotation'))!];
    // moto's RotateSecret creates the empty AWSPENDING version, as AWS does before it invokes the
    // function; it cannot invoke this one (no such moto Lambda), so the test invokes it instead.
    await sm.send(new RotateSecretCommand({ SecretId: secretId, RotationLambdaARN: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:tvm-rotate`, RotateImmediately: true })).catch(() => undefined);
    const described = await sm.send(new DescribeSecretCommand({ SecretId: secretId }));
    const pending = Object.entries(described.VersionIdsToStages ?? {}).find(([, stages]) => stages.includes('AWSPENDING'))?.[0];
    expect(pending).toBeDefined();
    const empty = await sm.send(new GetSecretValueCommand({ SecretId: secretId, VersionId: pending })).catch((e: Error) => e);
    expect(empty instanceof Error || !(empty as { SecretString?: string }).SecretString).toBe(true);
    await fourSteps(rotate, secretId, pending!);
  });
});
