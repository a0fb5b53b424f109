/**
 * Local STS/IAM emulator of the local stack (`tvm dev`): a test double for development only.
 *
 * One HTTP server speaks the awsQuery protocol (form-encoded POST, XML answers) to the real
 * `@aws-sdk/client-sts`, `@aws-sdk/client-iam` and the AWS CLI:
 * - STS `AssumeRole` (only tvm's own local identity may call it) and `GetCallerIdentity`;
 * - IAM `PutRolePolicy`, `GetRolePolicy`, `DeleteRolePolicy`, `ListRolePolicies` (only tvm's own
 *   local identity), with IAM's 10,240-character aggregate inline policy limit per role.
 * Every request's SigV4 signature is verified; issued sessions expire; `GetCallerIdentity` refuses
 * sessions the role's inline policies deny (so revocations are observable with the AWS CLI).
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
  deniesGetCallerIdentity,
  evaluateRequest,
  identityPolicyErrors,
  type PolicyInput,
  type SessionFacts,
} from './emulator/evaluate.js';
import { parseAmzDate, parseAuthorization, safeEqual, verifySignature } from './emulator/sigv4.js';

/** An IAM JSON policy document. */
export type PolicyDocument = Record<string, unknown>;

export interface EmulatorRole {
  arn: string;
  /** IAM JSON policy the role has. */
  permissions: PolicyDocument;
}

export interface StsIamEmulatorOptions {
  /** Default 0 (an ephemeral port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default: the account of the first role ARN, else '123456789012'. */
  accountId?: string;
  /** Role ARN → permission policy document. */
  roles: Record<string, object>;
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
  close(): Promise<void>;
  /** Test helper: number of sessions currently remembered (expired ones included until pruned). */
  sessionCount(): number;
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
const MAX_DURATION = 3600;
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
  version: 1;
  sessions: PersistedSession[];
  /** role name → policy name → policy document (JSON text as put). */
  inlinePolicies: Record<string, Record<string, string>>;
}

interface RoleInfo {
  arn: string;
  name: string;
  accountId: string;
  roleId: string;
  permissions: object;
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

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new EmulatorError(413, 'RequestEntityTooLarge', 'Request body too large.'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
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

function loadState(file: string | undefined): PersistedState {
  const empty: PersistedState = { version: 1, sessions: [], inlinePolicies: {} };
  if (!file || !existsSync(file)) return empty;
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Partial<PersistedState>;
  if (raw.version !== 1 || !Array.isArray(raw.sessions) || typeof raw.inlinePolicies !== 'object' || !raw.inlinePolicies) {
    throw new Error(`sts-iam-emulator: unreadable state file ${file}`);
  }
  return { version: 1, sessions: raw.sessions, inlinePolicies: raw.inlinePolicies };
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
 * role ARN), `aws:PrincipalAccount`, `aws:CurrentTime` and `aws:EpochTime`. Reasons: `Allowed`,
 * `ExplicitlyDenied` (a Deny matched; it wins), `ImplicitlyDenied` (no Allow in both the identity
 * and session policies), `InvalidRequest: …` (e.g. an unknown action). A malformed body answers
 * 400 `{"error": "..."}`.
 */
export async function startStsIamEmulator(opts: StsIamEmulatorOptions): Promise<StsIamEmulator> {
  const now = opts.now ?? Date.now;
  const host = opts.host ?? '127.0.0.1';
  const roles = new Map<string, RoleInfo>(); // by ARN
  const rolesByName = new Map<string, RoleInfo>();
  for (const [arn, permissions] of Object.entries(opts.roles)) {
    const { accountId, name } = parseRoleArn(arn);
    if (rolesByName.has(name)) throw new Error(`sts-iam-emulator: two roles named ${name}`);
    const info: RoleInfo = { arn, name, accountId, roleId: stableId('AROA', `role:${arn}`), permissions };
    roles.set(arn, info);
    rolesByName.set(name, info);
  }
  const firstRole = roles.values().next();
  const accountId = opts.accountId ?? (firstRole.done ? '123456789012' : firstRole.value.accountId);
  const callerArn = `arn:aws:iam::${accountId}:user/${CALLER_USER_NAME}`;
  const callerUserId = stableId('AIDA', `user:${opts.callerCredentials.accessKeyId}`);

  const state = loadState(opts.stateFile);
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

  function inlineOf(roleName: string): Record<string, string> {
    return state.inlinePolicies[roleName] ?? {};
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

  function inlinePolicyInputs(roleName: string): PolicyInput[] {
    return Object.entries(inlineOf(roleName)).map(([name, doc]) => ({ name: `inline:${name}`, policy: JSON.parse(doc) }));
  }

  async function evaluateSession(s: SessionRecord, action: string, resource: string) {
    const role = roles.get(s.roleArn)!;
    return evaluateRequest({
      session: facts(s),
      identityPolicies: [{ name: 'role-permissions', policy: role.permissions }, ...inlinePolicyInputs(role.name)],
      sessionPolicy: s.sessionPolicy !== undefined ? JSON.parse(s.sessionPolicy) : undefined,
      action,
      resource,
      nowMs: now(),
    });
  }

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
    if (caller.kind === 'session' && caller.session.expiresAt <= now()) {
      throw new EmulatorError(400, 'ExpiredToken', 'The security token included in the request is expired');
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

  async function assumeRole(c: Caller, p: URLSearchParams): Promise<string> {
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
    const role = roles.get(roleArn);
    if (c.kind !== 'tvm' || !role) {
      throw new EmulatorError(403, 'AccessDenied', `User: ${callerArnOf(c)} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`);
    }
    const durationRaw = p.get('DurationSeconds');
    let duration = MAX_DURATION;
    if (durationRaw !== null) {
      if (!/^\d{1,6}$/.test(durationRaw)) throw validation('durationSeconds', durationRaw, 'Member must be an integer');
      duration = Number(durationRaw);
      if (duration < MIN_DURATION) {
        throw validation('durationSeconds', durationRaw, `Member must have value greater than or equal to ${MIN_DURATION}`);
      }
      if (duration > MAX_DURATION) {
        throw new EmulatorError(400, 'ValidationError', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.');
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

  async function getCallerIdentity(c: Caller): Promise<string> {
    if (c.kind === 'tvm') {
      return `<Arn>${xmlEscape(callerArn)}</Arn><UserId>${callerUserId}</UserId><Account>${accountId}</Account>`;
    }
    const f = facts(c.session);
    const role = roles.get(c.session.roleArn)!;
    const deny = await deniesGetCallerIdentity(f, inlinePolicyInputs(role.name), now());
    if (deny.denied) {
      throw new EmulatorError(
        403,
        'AccessDenied',
        `User: ${f.assumedRoleArn} is not authorized to perform: sts:GetCallerIdentity with an explicit deny in an identity-based policy`,
      );
    }
    return `<Arn>${xmlEscape(f.assumedRoleArn)}</Arn><UserId>${xmlEscape(f.userId)}</UserId><Account>${f.accountId}</Account>`;
  }

  // ---------------------------------------------------------------- IAM

  function iamRole(c: Caller, action: string, p: URLSearchParams): RoleInfo {
    const roleName = p.get('RoleName');
    if (c.kind !== 'tvm') {
      throw new EmulatorError(403, 'AccessDenied', `User: ${callerArnOf(c)} is not authorized to perform: iam:${action} on resource: role ${roleName ?? ''}`);
    }
    if (roleName === null) throw validation('roleName', null, 'Member must not be null');
    const role = rolesByName.get(roleName);
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

  async function putRolePolicy(c: Caller, p: URLSearchParams): Promise<null> {
    const role = iamRole(c, 'PutRolePolicy', p);
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
    const current = inlineOf(role.name);
    let total = stripWhitespace(doc).length;
    for (const [other, otherDoc] of Object.entries(current)) {
      if (other !== name) total += stripWhitespace(otherDoc).length;
    }
    if (total > INLINE_POLICY_BUDGET) {
      throw new EmulatorError(409, 'LimitExceeded', `Maximum policy size of ${INLINE_POLICY_BUDGET} bytes exceeded for role ${role.name}`);
    }
    state.inlinePolicies[role.name] = { ...current, [name]: doc };
    persist();
    return null;
  }

  function getRolePolicy(c: Caller, p: URLSearchParams): string {
    const role = iamRole(c, 'GetRolePolicy', p);
    const name = policyName(p);
    const doc = inlineOf(role.name)[name];
    if (doc === undefined) throw new EmulatorError(404, 'NoSuchEntity', `The role policy with name ${name} cannot be found.`);
    return (
      `<PolicyName>${xmlEscape(name)}</PolicyName><RoleName>${xmlEscape(role.name)}</RoleName>` +
      `<PolicyDocument>${xmlEscape(encodeURIComponent(doc))}</PolicyDocument>`
    );
  }

  function deleteRolePolicy(c: Caller, p: URLSearchParams): null {
    const role = iamRole(c, 'DeleteRolePolicy', p);
    const name = policyName(p);
    const current = inlineOf(role.name);
    if (current[name] === undefined) throw new EmulatorError(404, 'NoSuchEntity', `The role policy with name ${name} cannot be found.`);
    const next = { ...current };
    delete next[name];
    if (Object.keys(next).length === 0) delete state.inlinePolicies[role.name];
    else state.inlinePolicies[role.name] = next;
    persist();
    return null;
  }

  function listRolePolicies(c: Caller, p: URLSearchParams): string {
    const role = iamRole(c, 'ListRolePolicies', p);
    const names = Object.keys(inlineOf(role.name)).sort();
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
    const outcome = await evaluateSession(s, input['action'] as string, input['resource'] as string);
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
      let result: string | null;
      switch (action) {
        case 'AssumeRole':
          result = await assumeRole(caller, params);
          break;
        case 'GetCallerIdentity':
          result = await getCallerIdentity(caller);
          break;
        case 'PutRolePolicy':
          result = await putRolePolicy(caller, params);
          break;
        case 'GetRolePolicy':
          result = getRolePolicy(caller, params);
          break;
        case 'DeleteRolePolicy':
          result = deleteRolePolicy(caller, params);
          break;
        default:
          result = listRolePolicies(caller, params);
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
    sessionCount: () => sessions.size,
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (pendingWrite) persist();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
