// tvm vend action: GitHub OIDC token → tvm /v1/vend → AWS credentials for later steps; in the
// post step, revoke the lease. Node built-ins only (fetch, fs, crypto), so it runs as checked in.
//
// Main step: fetch the job's OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN, audience from the
// `audience` input), POST /v1/vend, mask the key id, secret key and session token, append the
// credentials to $GITHUB_ENV (or, with `export-env: false`, to the outputs only), the lease id to
// $GITHUB_STATE and outputs to $GITHUB_OUTPUT.
// Post step (GitHub sets STATE_*): fetch a fresh token, POST /v1/leases/{id}/revoke.
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';

const TIMEOUT_MS = 30_000;

/** Inputs arrive as INPUT_<NAME> with the name upper-cased and spaces turned into '_'. */
function input(name, { required = false } = {}) {
  const value = (process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
  if (required && !value) throw new ActionError(`input '${name}' is required`);
  return value;
}

class ActionError extends Error {}

/** Appends NAME=value to one of the runner's command files, in the delimiter form so nothing can inject a line. */
function appendCommandFile(envName, name, value) {
  const file = process.env[envName];
  if (!file) throw new ActionError(`${envName} is not set: not running on a GitHub Actions runner?`);
  const delimiter = `ghadelimiter_${randomUUID()}`;
  const text = String(value);
  if (text.includes(delimiter)) throw new ActionError(`unexpected value for ${name}`);
  appendFileSync(file, `${name}<<${delimiter}\n${text}\n${delimiter}\n`);
}

function mask(value) {
  if (value) process.stdout.write(`::add-mask::${value}\n`);
}

/** A workflow command's data must not carry newlines or a '%' that could start an escape. */
function escapeData(s) {
  return String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

async function request(url, init, what) {
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt) await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    let res;
    try {
      res = await fetch(url, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (e) {
      lastError = new ActionError(`${what}: ${e.name === 'TimeoutError' ? 'timed out' : e.message}`);
      continue;
    }
    const text = await res.text();
    let body;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = { message: text.slice(0, 200) };
    }
    if (res.ok) return body;
    lastError = new ActionError(
      `${what}: HTTP ${res.status}${body.error ? ` ${body.error}` : ''}${body.message ? `: ${body.message}` : ''}${body.requestId ? ` (request ${body.requestId})` : ''}`,
    );
    // Retry only what may pass on a second try; a refusal is final.
    if (![429, 502, 503, 504].includes(res.status)) break;
  }
  throw lastError;
}

/** The job's OIDC token for `audience` (needs `permissions: id-token: write`). */
async function oidcToken(audience) {
  const url = process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) {
    throw new ActionError('no OIDC token available: give the job `permissions: id-token: write`');
  }
  const u = new URL(url);
  if (audience) u.searchParams.set('audience', audience);
  const body = await request(
    u,
    { headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json; api-version=2.0' } },
    'getting the OIDC token',
  );
  if (typeof body.value !== 'string' || !body.value) throw new ActionError('getting the OIDC token: the answer has no token');
  mask(body.value);
  return body.value;
}

function endpoint() {
  const e = input('endpoint', { required: true }).replace(/\/+$/, '');
  const u = new URL(e);
  const loopback = u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
    throw new ActionError('endpoint must be https (http only for 127.0.0.1 or localhost)');
  }
  return e;
}

async function main() {
  const api = endpoint();
  const grant = input('grant', { required: true });
  const durationText = input('duration-seconds');
  const body = { grant };
  if (durationText) {
    const n = Number(durationText);
    if (!Number.isInteger(n) || n <= 0) throw new ActionError("input 'duration-seconds' must be a whole number of seconds");
    body.durationSeconds = n;
  }
  const context = {};
  for (const k of ['task', 'tool', 'sensitivity', 'environment']) if (input(k)) context[k] = input(k);
  if (Object.keys(context).length) body.context = context;

  const token = await oidcToken(input('audience'));
  const lease = await request(
    `${api}/v1/vend`,
    {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    },
    'tvm vend',
  );
  const c = lease.credentials ?? {};
  if (!lease.leaseId || !c.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) {
    throw new ActionError('tvm vend: the answer has no credentials');
  }
  // Mask before anything could print them (the key id too: it names the session in CloudTrail).
  mask(c.AccessKeyId);
  mask(c.SecretAccessKey);
  mask(c.SessionToken);
  const exportEnv = input('export-env').toLowerCase() !== 'false';

  // The lease id first, so the post step revokes even if exporting fails half way.
  appendCommandFile('GITHUB_STATE', 'leaseId', lease.leaseId);
  appendCommandFile('GITHUB_STATE', 'endpoint', api);
  const region = input('aws-region');
  if (exportEnv) {
    appendCommandFile('GITHUB_ENV', 'AWS_ACCESS_KEY_ID', c.AccessKeyId);
    appendCommandFile('GITHUB_ENV', 'AWS_SECRET_ACCESS_KEY', c.SecretAccessKey);
    appendCommandFile('GITHUB_ENV', 'AWS_SESSION_TOKEN', c.SessionToken);
    if (c.Expiration) appendCommandFile('GITHUB_ENV', 'AWS_CREDENTIAL_EXPIRATION', c.Expiration);
    if (region) {
      appendCommandFile('GITHUB_ENV', 'AWS_REGION', region);
      appendCommandFile('GITHUB_ENV', 'AWS_DEFAULT_REGION', region);
    }
  }
  if (process.env.GITHUB_OUTPUT || !exportEnv) {
    appendCommandFile('GITHUB_OUTPUT', 'lease-id', lease.leaseId);
    appendCommandFile('GITHUB_OUTPUT', 'expires-at', lease.expiresAt ?? c.Expiration ?? '');
    appendCommandFile('GITHUB_OUTPUT', 'role-arn', lease.roleArn ?? '');
    // Outputs only: the credentials go to this step's outputs (masked) instead of every later step's environment.
    if (!exportEnv) {
      appendCommandFile('GITHUB_OUTPUT', 'aws-access-key-id', c.AccessKeyId);
      appendCommandFile('GITHUB_OUTPUT', 'aws-secret-access-key', c.SecretAccessKey);
      appendCommandFile('GITHUB_OUTPUT', 'aws-session-token', c.SessionToken);
    }
  }
  process.stdout.write(
    `tvm: lease ${lease.leaseId} for grant ${escapeData(lease.grant ?? grant)} (${escapeData(lease.roleArn ?? '')}) until ${escapeData(lease.expiresAt ?? c.Expiration ?? '?')}\n`,
  );
}

async function post() {
  const leaseId = process.env.STATE_leaseId;
  if (!leaseId) return; // the main step failed before a lease existed
  if (input('revoke').toLowerCase() === 'false') {
    process.stdout.write(`tvm: lease ${leaseId} left to expire (revoke: false)\n`);
    return;
  }
  const api = process.env.STATE_endpoint || endpoint();
  try {
    const token = await oidcToken(input('audience'));
    const out = await request(
      `${api}/v1/leases/${encodeURIComponent(leaseId)}/revoke`,
      { method: 'POST', headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } },
      'tvm revoke',
    );
    process.stdout.write(`tvm: lease ${leaseId} ${out.status ?? 'revoked'}\n`);
  } catch (e) {
    // The credentials still expire on their own; say so loudly, but do not fail a finished job.
    process.stdout.write(`::warning::${escapeData(`tvm: could not revoke lease ${leaseId}: ${e.message}; it expires on its own`)}\n`);
  }
}

const isPost = process.env.STATE_isPost === 'true';
if (!isPost && process.env.GITHUB_STATE) appendFileSync(process.env.GITHUB_STATE, `isPost<<ghadelimiter_post\ntrue\nghadelimiter_post\n`);
(isPost ? post() : main()).catch((e) => {
  const message = e instanceof ActionError ? e.message : `unexpected error: ${e?.message ?? e}`;
  process.stdout.write(`::error::${escapeData(`tvm: ${message}`)}\n`);
  process.exitCode = 1;
});
