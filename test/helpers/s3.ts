/**
 * Checks of what vended credentials may do, for tests: a GetObject at the local S3 signed by
 * `@smithy/signature-v4` (optionally from another loopback address, for `aws:SourceIp`), the AWS
 * CLI's `aws s3 cp` (the emulator's evaluate route: ./evaluate.ts). AWS never denies
 * `sts:GetCallerIdentity`, so neither uses it.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

const run = promisify(execFile);

/** Vended credentials as tvm answers them. */
export interface VendedCredentials {
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken: string;
}

export interface S3Answer {
  status: number;
  /** S3's error code (`AccessDenied`, `NoSuchKey`, `ExpiredToken`…), or undefined on success. */
  code?: string;
  body: string;
}

/** GET `path` (`/bucket/key`) at the local S3, signed with these credentials. */
export async function s3Get(
  endpoint: string,
  c: VendedCredentials,
  path: string,
  opts: { localAddress?: string; signingDate?: Date } = {},
): Promise<S3Answer> {
  const url = new URL(endpoint);
  const signer = new SignatureV4({
    credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken },
    region: 'us-east-1',
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
  });
  const signed = await signer.sign(
    { method: 'GET', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path, headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } },
    { signingDate: opts.signingDate },
  );
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET', headers: signed.headers, localAddress: opts.localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: /<Code>([^<]+)<\/Code>/.exec(body)?.[1], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A clean environment for the CLI and CMD: no AWS configuration of this machine leaks in. */
export function cleanEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: home,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

/** The AWS CLI's environment with these credentials and nothing of this machine's AWS configuration. */
export function credentialEnv(home: string, c: VendedCredentials): Record<string, string> {
  return cleanEnv(home, { AWS_ACCESS_KEY_ID: c.AccessKeyId, AWS_SECRET_ACCESS_KEY: c.SecretAccessKey, AWS_SESSION_TOKEN: c.SessionToken });
}

/** `aws s3 cp s3://<bucket/key> -` with these credentials: the object's text, or the CLI's error. */
export async function awsS3Cp(endpoint: string, c: VendedCredentials, s3Uri: string, home = '/tmp'): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const env = credentialEnv(home, c);

  const out = await run('aws', ['s3', 'cp', s3Uri, '-', '--endpoint-url', endpoint], { env, timeout: 90_000 }).catch((e) => e);
  return { ok: !out.code && !out.killed, stdout: String(out.stdout ?? ''), stderr: String(out.stderr ?? '') };
}
