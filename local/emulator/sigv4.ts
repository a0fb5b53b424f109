/**
 * SigV4 verification for the local STS/IAM emulator: parse the Authorization header, recompute
 * the signature over the same signed headers with `@smithy/signature-v4`, compare in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

export interface ParsedAuthorization {
  accessKeyId: string;
  /** YYYYMMDD from the credential scope. */
  scopeDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

const AUTH_RE =
  /^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request\s*,\s*SignedHeaders=([a-z0-9;._-]+)\s*,\s*Signature=([0-9a-f]{64})\s*$/;

export function parseAuthorization(header: string | undefined): ParsedAuthorization | null {
  if (!header) return null;
  const m = AUTH_RE.exec(header.trim());
  if (!m) return null;
  return {
    accessKeyId: m[1],
    scopeDate: m[2],
    region: m[3],
    service: m[4],
    signedHeaders: m[5].split(';').filter((h) => h.length > 0),
    signature: m[6],
  };
}

/** Parses `YYYYMMDDTHHMMSSZ` (the X-Amz-Date format). */
export function parseAmzDate(value: string | undefined): Date | null {
  if (!value) return null;
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return null;
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return Number.isNaN(ms) ? null : new Date(ms);
}

export interface IncomingSignedRequest {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: Buffer;
}

export type VerifyOutcome = 'ok' | 'mismatch';

/**
 * Recomputes the signature of `req` with `secretAccessKey` over exactly the headers the client
 * signed and compares it with the one it sent.
 */
export async function verifySignature(
  req: IncomingSignedRequest,
  auth: ParsedAuthorization,
  secretAccessKey: string,
  signingDate: Date,
  /** S3 signs the path as sent (no second URI-encoding, no normalization); other services escape it. */
  opts: { uriEscapePath?: boolean } = {},
): Promise<VerifyOutcome> {
  const signed = new Set(auth.signedHeaders);
  if (!signed.has('host')) return 'mismatch';
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = req.headers[name];
    if (value === undefined) return 'mismatch';
    headers[name] = value;
  }
  // A client-declared payload hash must describe the body actually sent.
  const declared = req.headers['x-amz-content-sha256'];
  // (A streamed, aws-chunked body is not the payload the hash describes: its chunks carry their own.)
  if (declared !== undefined && declared !== 'UNSIGNED-PAYLOAD' && !declared.startsWith('STREAMING-')) {
    const actual = createHash('sha256').update(req.body).digest('hex');
    if (!safeEqual(declared.toLowerCase(), actual)) return 'mismatch';
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: auth.accessKeyId, secretAccessKey },
    region: auth.region,
    service: auth.service,
    sha256: Sha256,
    uriEscapePath: opts.uriEscapePath ?? true,
    applyChecksum: false,
  });
  const host = headers['host'];
  const out = await signer.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: host.replace(/:\d+$/, ''),
      path: req.path,
      query: req.query,
      headers,
      body: req.body,
    },
    {
      signingDate,
      signingRegion: auth.region,
      signingService: auth.service,
      signableHeaders: signed,
    },
  );
  const authz = String((out.headers as Record<string, string>)['authorization'] ?? '');
  const m = /Signature=([0-9a-f]{64})/.exec(authz);
  const mSigned = /SignedHeaders=([^,\s]+)/.exec(authz);
  if (!m || !mSigned) return 'mismatch';
  // The signer adds x-amz-date itself: the client must have signed the same header set.
  if (mSigned[1] !== auth.signedHeaders.join(';')) return 'mismatch';
  return safeEqual(m[1], auth.signature) ? 'ok' : 'mismatch';
}

export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
