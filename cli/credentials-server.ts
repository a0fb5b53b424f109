/**
 * What `tvm exec` and `tvm agent` share: a lease cache that reuses one lease until it is due for
 * renewal, and a loopback server speaking the container-credentials protocol the AWS SDKs and CLI
 * read (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`).
 *
 * Why a cache in front of tvm: botocore refreshes whenever less than 900 s remain, so with a
 * 900-second grant every boto3 call would otherwise be a new lease (an AssumeRole and a lease
 * record each). Here an SDK's refresh costs a loopback call.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../functions/core/ports.js';
import { call, refusalOf, workloadToken } from './lib.js';

/** The container-credentials answer (SPEC: `GET /credentials`). */
export interface ContainerCredentials {
  AccessKeyId: string;
  SecretAccessKey: string;
  Token: string;
  Expiration: string;
  AccountId: string;
}

export interface HeldLease {
  leaseId: string;
  issuedAtMs: number;
  expiresAtMs: number;
  credentials: ContainerCredentials;
}

/** Where leases come from and go back to (tvm's API in the CLI; a fake is never needed: tests use the local stack). */
export interface LeaseSource {
  vend(): Promise<HeldLease>;
  revoke(leaseId: string): Promise<void>;
}

/** A lease is renewed once less than a third of its life, or 5 minutes, remains — whichever is more. */
export function renewAtMs(lease: Pick<HeldLease, 'issuedAtMs' | 'expiresAtMs'>): number {
  const life = lease.expiresAtMs - lease.issuedAtMs;
  return lease.expiresAtMs - Math.max(life / 3, 5 * 60_000);
}

/**
 * Credentials this close to their expiry are not handed out even when a renewal failed: a request
 * signed with them could arrive after they expired.
 */
export const EXPIRY_MARGIN_MS = 30_000;

/** Raised when no credentials can be served: the server answers 503, which the SDKs retry. */
export class CredentialsUnavailable extends Error {}

export interface LeaseCacheOptions {
  source: LeaseSource;
  clock: Clock;
  /** One line on stderr (no secrets: tvm's error code and fixed phrase, the lease id). */
  warn(line: string): void;
}

/** One lease reused until it is due; every lease it ever got is remembered for revocation at exit. */
export class LeaseCache {
  readonly leases: HeldLease[] = [];
  private current: HeldLease | undefined;
  private renewing: Promise<HeldLease> | undefined;

  constructor(private readonly opts: LeaseCacheOptions) {}

  /** The credentials to serve now: the current lease, or a new one once it is due. */
  async credentials(): Promise<ContainerCredentials> {
    const now = this.opts.clock.now();
    const held = this.current;
    if (held && now < renewAtMs(held)) return held.credentials;
    try {
      return (await this.renew()).credentials;
    } catch (e) {
      const message = (e as Error).message?.split('\n')[0] ?? 'failed';
      // Still-valid credentials beat none while the renewal window is open; expired ones never go out.
      const stillValid = held && this.opts.clock.now() < held.expiresAtMs - EXPIRY_MARGIN_MS;
      this.opts.warn(`cannot ${held ? 'renew' : 'get'} credentials: ${message}${stillValid ? ` (serving lease ${held!.leaseId} until it is due to expire)` : ''}`);
      if (stillValid) return held!.credentials;
      throw new CredentialsUnavailable(message);
    }
  }

  /** Vends now (one at a time: concurrent SDK calls share one vend). */
  renew(): Promise<HeldLease> {
    this.renewing ??= this.opts.source
      .vend()
      .then((lease) => {
        this.leases.push(lease);
        this.current = lease;
        return lease;
      })
      .finally(() => {
        this.renewing = undefined;
      });
    return this.renewing;
  }

  /** Leases not yet expired by the clock (the ones worth revoking). */
  live(): HeldLease[] {
    const now = this.opts.clock.now();
    return this.leases.filter((l) => l.expiresAtMs > now);
  }

  /**
   * Revokes every lease still live; a failure (a token no longer accepted, tvm unreachable) is one
   * line on stderr naming the lease and when it expires anyway. Answers how many failed.
   */
  async revokeLive(): Promise<{ revoked: string[]; failed: string[] }> {
    await this.renewing?.catch(() => undefined);
    const revoked: string[] = [];
    const failed: string[] = [];
    for (const lease of this.live()) {
      try {
        await this.opts.source.revoke(lease.leaseId);
        revoked.push(lease.leaseId);
      } catch (e) {
        failed.push(lease.leaseId);
        this.opts.warn(`could not revoke lease ${lease.leaseId} (${(e as Error).message?.split('\n')[0]}); it expires at ${new Date(lease.expiresAtMs).toISOString()}`);
      }
    }
    this.current = undefined;
    return { revoked, failed };
  }
}

export interface TvmSourceOptions {
  endpoint: string;
  grant: string;
  /** `--token-file`; else `$TVM_TOKEN`, else `$TVM_TOKEN_FILE` of `env`. Re-read at every call. */
  tokenFile?: string;
  env: NodeJS.ProcessEnv;
  durationSeconds?: number;
  context: Record<string, string>;
  /** The revocation reason recorded on the lease. */
  reason: string;
}

interface VendAnswer {
  leaseId: string;
  roleArn: string;
  issuedAt: string;
  expiresAt: string;
  credentials: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string; Expiration: string };
}

/** Leases from tvm's API: `POST /v1/vend`, and the self-revoke route, each with the token read afresh (projected tokens rotate). */
export function tvmLeaseSource(o: TvmSourceOptions): LeaseSource {
  const token = () => workloadToken(o.tokenFile, o.env);
  return {
    async vend() {
      const answer = await call(`${o.endpoint}/v1/vend`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ grant: o.grant, durationSeconds: o.durationSeconds, context: Object.keys(o.context).length ? o.context : undefined }),
      });
      if (answer.status !== 200) throw refusalOf(answer);
      const v = answer.body as unknown as VendAnswer;
      const c = v.credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) throw new Error('tvm answered without credentials');
      return {
        leaseId: v.leaseId,
        issuedAtMs: Date.parse(v.issuedAt),
        // STS's own expiry of the session, which is what the SDKs will compare against.
        expiresAtMs: Math.min(Date.parse(c.Expiration), Date.parse(v.expiresAt)),
        credentials: { AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken, Expiration: c.Expiration, AccountId: v.roleArn.split(':')[4] ?? '' },
      };
    },
    async revoke(leaseId) {
      const answer = await call(`${o.endpoint}/v1/leases/${encodeURIComponent(leaseId)}/revoke`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: o.reason }),
      });
      if (answer.status !== 200) throw refusalOf(answer);
    },
  };
}

/** A fresh auth token for the container-credentials server. */
export function newAuthToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time comparison of two secrets of any length (both hashed first, so lengths leak nothing). */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface CredentialsServer {
  /** `http://127.0.0.1:PORT/credentials`: the value of AWS_CONTAINER_CREDENTIALS_FULL_URI. */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export interface CredentialsServerOptions {
  cache: Pick<LeaseCache, 'credentials'>;
  authToken: string;
  /** Default 0: a free port. */
  port?: number;
}

/** The loopback container-credentials server: `GET /credentials` with the auth token, else 401. */
export async function startCredentialsServer(opts: CredentialsServerOptions): Promise<CredentialsServer> {
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/credentials') return send(404, { code: 'NotFound', message: 'Not found.' });
    if (req.method !== 'GET') return send(405, { code: 'MethodNotAllowed', message: 'Use GET.' });
    const given = req.headers.authorization;
    if (!sameSecret(typeof given === 'string' ? given : undefined, opts.authToken)) return send(401, { code: 'Unauthorized', message: 'Authorization is missing or wrong.' });
    opts.cache.credentials().then(
      (c) => send(200, c),
      () => send(503, { code: 'CredentialsUnavailable', message: 'tvm cannot vend credentials now; see the tvm process stderr.' }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/credentials`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
