/**
 * The local S3 of `tvm dev`: a test double for development only, where a user sees with the AWS
 * CLI or boto3 what vended credentials may do.
 *
 * Path-style REST on its own port: `ListBuckets`, `HeadBucket`, `ListObjectsV2` (and v1),
 * `GetObject` (with a single byte range), `HeadObject`, `PutObject`, `DeleteObject`. Every request's
 * SigV4 signature (header form) is checked against the STS/IAM emulator's credentials, and the
 * request is authorized as AWS would for that caller — for a role session: the role's permission
 * policy ∩ the session policy, minus the role's inline denies (tvm's revocations) — with the
 * request's condition keys (`aws:SourceIp` is the TCP peer, `aws:SecureTransport` false, the
 * session's `aws:userid`, `aws:SourceIdentity`, `aws:TokenIssueTime`, `aws:PrincipalTag/…`,
 * `aws:CurrentTime`; `s3:prefix`, `s3:delimiter`, `s3:max-keys` on a listing). Answers and errors
 * are S3's XML. Buckets have no bucket policies: each is treated as owned by the caller's account.
 *
 * The emulator's policy evaluation uses `@cloud-copilot/iam-simulate` (AGPL-3.0): this module is
 * dev/test code and must never be bundled into a Lambda. It logs nothing.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, relative, sep } from 'node:path';
import type { SessionAuthority } from './sts-iam-emulator.js';
import { peerAddress, readBodyUpTo } from './sts-iam-emulator.js';
import { parseAmzDate, parseAuthorization, safeEqual, verifySignature } from './emulator/sigv4.js';
import { fileObjectStore, memoryObjectStore, type ObjectMeta, type ObjectStore } from './s3-store.js';

export interface LocalS3Options {
  /** Bucket names, and optionally a folder whose files each bucket starts with (where a key is absent). */
  buckets: { name: string; seed?: string }[];
  authority: SessionAuthority;
  /** Objects are kept under this folder; without it, in memory. */
  dataDir?: string;
  /** Default 0 (an ephemeral port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

export interface LocalS3 {
  url: string;
  port: number;
  close(): Promise<void>;
}

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const MAX_BODY = 64 * 1024 * 1024;
const MAX_SKEW_MS = 15 * 60 * 1000;
const OWNER_ID = createHash('sha256').update('tvm-local-s3').digest('hex');
const CONTENT_TYPES: Record<string, string> = {
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.html': 'text/html',
};

class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }
}

function xmlEscape(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function isoMs(ms: number): string {
  return new Date(ms).toISOString();
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return readBodyUpTo(req, MAX_BODY, () => new S3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size'));
}

/** Decodes an `aws-chunked` body (`<hex size>[;chunk-signature=…]\r\n<data>\r\n … 0\r\n[trailers]\r\n`). */
function decodeAwsChunked(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) throw new S3Error(400, 'IncompleteBody', 'The request body terminated unexpectedly');
    const size = parseInt(body.subarray(at, eol).toString('latin1').split(';')[0], 16);
    if (!Number.isFinite(size) || size < 0) throw new S3Error(400, 'InvalidChunkSizeError', 'Only the last chunk is allowed to have a size less than 8192 bytes');
    if (size === 0) return Buffer.concat(out);
    const start = eol + 2;
    if (start + size > body.length) throw new S3Error(400, 'IncompleteBody', 'The request body terminated unexpectedly');
    out.push(body.subarray(start, start + size));
    at = start + size + 2;
  }
}

/** Every file under `dir`, as [key, absolute path]. */
function seedFiles(dir: string): [string, string][] {
  const out: [string, string][] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push([relative(dir, p).split(sep).join('/'), p]);
    }
  };
  walk(dir);
  return out;
}

function denialMessage(arn: string, action: string, resource: string, decision: string): string {
  const why = decision === 'ExplicitlyDenied' ? 'with an explicit deny in an identity-based policy' : `because no identity-based policy allows the ${action} action`;
  return `User: ${arn} is not authorized to perform: ${action} on resource: "${resource}" ${why}`;
}

function newMeta(key: string, body: Buffer, contentType: string, metadata: Record<string, string>, at: number): ObjectMeta {
  return { key, size: body.length, etag: `"${createHash('md5').update(body).digest('hex')}"`, lastModified: at, contentType, metadata };
}

/** Starts the local S3 over the emulator's credentials and policies. */
export async function startLocalS3(opts: LocalS3Options): Promise<LocalS3> {
  const store: ObjectStore = opts.dataDir ? fileObjectStore(opts.dataDir) : memoryObjectStore();
  const auth = opts.authority;
  const buckets = new Map<string, number>(); // name → creation time (epoch ms)
  for (const b of opts.buckets) {
    buckets.set(b.name, auth.now());
    if (!b.seed) continue;
    if (!existsSync(b.seed) || !statSync(b.seed).isDirectory()) {
      throw new Error(`local S3: bucket ${b.name}'s seed folder ${b.seed} does not exist (config s3.buckets)`);
    }
    for (const [key, file] of seedFiles(b.seed)) {
      if (store.head(b.name, key)) continue;
      const body = readFileSync(file);
      store.put(b.name, newMeta(key, body, CONTENT_TYPES[extname(file)] ?? 'binary/octet-stream', {}, auth.now()), body);
    }
  }

  interface Caller {
    accessKeyId: string;
    arn: string;
  }

  /** Checks the SigV4 signature; answers the caller (undefined: anonymous). */
  async function authenticate(req: IncomingMessage, rawPath: string, url: URL, body: Buffer): Promise<Caller | undefined> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
    if (!headers['authorization']) {
      if (url.searchParams.has('X-Amz-Signature')) throw new S3Error(501, 'NotImplemented', 'Presigned URLs are not implemented by the local S3.');
      return undefined;
    }
    const a = parseAuthorization(headers['authorization']);
    if (!a) throw new S3Error(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed.');
    if (a.service !== 's3') throw new S3Error(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; incorrect service "${a.service}". This endpoint belongs to "s3".`);
    const date = parseAmzDate(headers['x-amz-date']);
    if (!date) throw new S3Error(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
    if (headers['x-amz-date']!.slice(0, 8) !== a.scopeDate) {
      throw new S3Error(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed; the date in the credential scope does not match the request date.');
    }
    if (headers['x-amz-content-sha256'] === undefined) {
      throw new S3Error(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
    }
    const who = auth.lookup(a.accessKeyId);
    if (!who) throw new S3Error(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: a.accessKeyId });
    const token = headers['x-amz-security-token'];
    if (who.sessionToken === undefined ? token !== undefined : token === undefined || !safeEqual(token, who.sessionToken)) {
      throw new S3Error(400, 'InvalidToken', 'The provided token is malformed or otherwise invalid.');
    }
    // Checked before the clock skew: with a moved test clock, an expired session must read as expired.
    if (who.expiresAt !== undefined && who.expiresAt <= auth.now()) {
      throw new S3Error(400, 'ExpiredToken', 'The provided token has expired.');
    }
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const outcome = await verifySignature({ method: req.method ?? 'GET', path: rawPath, query, headers, body }, a, who.secretAccessKey, date, {
      uriEscapePath: false,
    });
    if (outcome !== 'ok') {
      throw new S3Error(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
        AWSAccessKeyId: a.accessKeyId,
      });
    }
    if (Math.abs(date.getTime() - auth.now()) > MAX_SKEW_MS) {
      throw new S3Error(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
        RequestTime: headers['x-amz-date']!,
        ServerTime: new Date(auth.now()).toISOString(),
        MaxAllowedSkewMilliseconds: String(MAX_SKEW_MS),
      });
    }
    return { accessKeyId: a.accessKeyId, arn: who.arn };
  }

  async function decide(caller: Caller | undefined, req: IncomingMessage, action: string, resource: string, extra: Record<string, string>) {
    if (!caller) return 'ImplicitlyDenied';
    return (await auth.authorize(caller.accessKeyId, action, resource, { sourceIp: peerAddress(req), secureTransport: false, extra })).decision;
  }

  async function allowed(caller: Caller | undefined, req: IncomingMessage, action: string, resource: string, extra: Record<string, string> = {}): Promise<boolean> {
    return (await decide(caller, req, action, resource, extra)) === 'Allowed';
  }

  /** Throws AccessDenied, worded as S3 words it, unless the caller may do ACTION on RESOURCE. */
  async function demand(caller: Caller | undefined, req: IncomingMessage, action: string, resource: string, extra: Record<string, string> = {}): Promise<void> {
    const decision = await decide(caller, req, action, resource, extra);
    if (decision === 'Allowed') return;
    if (!caller) throw new S3Error(403, 'AccessDenied', 'Access Denied');
    throw new S3Error(403, 'AccessDenied', denialMessage(caller.arn, action, resource, decision));
  }

  function send(res: ServerResponse, status: number, headers: Record<string, string | number>, body: Buffer | string, requestId: string, head = false): void {
    res.writeHead(status, {
      'x-amz-request-id': requestId,
      'x-amz-id-2': Buffer.from(requestId).toString('base64'),
      date: new Date(auth.now()).toUTCString(),
      server: 'tvm-local-s3',
      'content-length': Buffer.byteLength(body),
      ...headers,
    });
    res.end(head ? undefined : body);
  }

  function xml(res: ServerResponse, requestId: string, inner: string): void {
    send(res, 200, { 'content-type': 'application/xml' }, `<?xml version="1.0" encoding="UTF-8"?>\n${inner}`, requestId);
  }

  function bucketOf(name: string): void {
    if (!buckets.has(name)) throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: name });
  }

  async function listObjects(req: IncomingMessage, res: ServerResponse, url: URL, bucket: string, caller: Caller | undefined, requestId: string) {
    const q = url.searchParams;
    const v2 = q.get('list-type') === '2';
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const maxKeysRaw = q.get('max-keys');
    if (maxKeysRaw !== null && !/^\d+$/.test(maxKeysRaw)) throw new S3Error(400, 'InvalidArgument', 'Provided max-keys not an integer or within integer range');
    const maxKeys = Math.min(1000, maxKeysRaw === null ? 1000 : Number(maxKeysRaw));
    const ctx: Record<string, string> = { 's3:max-keys': String(maxKeysRaw ?? 1000) };
    if (q.has('prefix')) ctx['s3:prefix'] = prefix;
    if (q.has('delimiter')) ctx['s3:delimiter'] = delimiter;
    await demand(caller, req, 's3:ListBucket', `arn:aws:s3:::${bucket}`, ctx);
    const encode = q.get('encoding-type') === 'url';
    const enc = (s: string) => xmlEscape(encode ? encodeURIComponent(s).replace(/%2F/g, '/') : s);
    let after = v2 ? (q.get('start-after') ?? '') : (q.get('marker') ?? '');
    const continuation = v2 ? q.get('continuation-token') : null;
    if (continuation !== null) {
      const decoded = Buffer.from(continuation, 'base64url').toString('utf8');
      if (!decoded.startsWith('k:')) throw new S3Error(400, 'InvalidArgument', 'The continuation token provided is incorrect');
      after = decoded.slice(2);
    }
    const contents: ObjectMeta[] = [];
    const prefixes: string[] = [];
    let truncated = false;
    let last = '';
    for (const o of store.list(bucket)) {
      if (!o.key.startsWith(prefix) || (after && Buffer.compare(Buffer.from(o.key), Buffer.from(after)) <= 0)) continue;
      const cut = delimiter ? o.key.indexOf(delimiter, prefix.length) : -1;
      const common = cut >= 0 ? o.key.slice(0, cut + delimiter.length) : undefined;
      if (common !== undefined && prefixes.at(-1) === common) {
        last = o.key;
        continue;
      }
      if (contents.length + prefixes.length >= maxKeys) {
        truncated = true;
        break;
      }
      if (common !== undefined) prefixes.push(common);
      else contents.push(o);
      last = o.key;
    }
    const items =
      contents
        .map(
          (o) =>
            `<Contents><Key>${enc(o.key)}</Key><LastModified>${isoMs(o.lastModified)}</LastModified><ETag>${xmlEscape(o.etag)}</ETag>` +
            `<Size>${o.size}</Size>${v2 ? '' : `<Owner><ID>${OWNER_ID}</ID></Owner>`}<StorageClass>STANDARD</StorageClass></Contents>`,
        )
        .join('') + prefixes.map((p) => `<CommonPrefixes><Prefix>${enc(p)}</Prefix></CommonPrefixes>`).join('');
    const head =
      `<Name>${xmlEscape(bucket)}</Name><Prefix>${enc(prefix)}</Prefix>` +
      (delimiter ? `<Delimiter>${enc(delimiter)}</Delimiter>` : '') +
      `<MaxKeys>${maxKeys}</MaxKeys>` +
      (encode ? '<EncodingType>url</EncodingType>' : '') +
      `<IsTruncated>${truncated}</IsTruncated>`;
    const tail = v2
      ? `<KeyCount>${contents.length + prefixes.length}</KeyCount>` +
        (continuation !== null ? `<ContinuationToken>${xmlEscape(continuation)}</ContinuationToken>` : '') +
        (q.has('start-after') ? `<StartAfter>${enc(q.get('start-after')!)}</StartAfter>` : '') +
        (truncated ? `<NextContinuationToken>${Buffer.from(`k:${last}`).toString('base64url')}</NextContinuationToken>` : '')
      : `<Marker>${enc(q.get('marker') ?? '')}</Marker>` + (truncated && delimiter ? `<NextMarker>${enc(last)}</NextMarker>` : '');
    xml(res, requestId, `<ListBucketResult xmlns="${NS}">${head}${tail}${items}</ListBucketResult>`);
  }

  function objectHeaders(meta: ObjectMeta): Record<string, string> {
    const h: Record<string, string> = {
      'content-type': meta.contentType,
      etag: meta.etag,
      'last-modified': new Date(meta.lastModified).toUTCString(),
      'accept-ranges': 'bytes',
    };
    for (const [k, v] of Object.entries(meta.metadata)) h[`x-amz-meta-${k}`] = v;
    return h;
  }

  /** A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range, or undefined for the whole object. */
  function rangeOf(header: string | undefined, size: number): [number, number] | undefined {
    if (!header) return undefined;
    const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
    if (!m || (m[1] === '' && m[2] === '')) return undefined; // S3 ignores a range it cannot parse
    let start: number;
    let end: number;
    if (m[1] === '') {
      start = Math.max(0, size - Number(m[2]));
      end = size - 1;
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
    if (start >= size || start > end) throw new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable', { RangeRequested: header, ActualObjectSize: String(size) });
    return [start, end];
  }

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const rawUrl = req.url ?? '/';
    const rawPath = rawUrl.split('?')[0];
    const url = new URL(rawUrl, 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    let body = await readBody(req);
    const caller = await authenticate(req, rawPath, url, body);
    if (/aws-chunked/.test(String(req.headers['content-encoding'] ?? '')) || String(req.headers['x-amz-content-sha256'] ?? '').startsWith('STREAMING-')) {
      body = decodeAwsChunked(body);
    }

    const segments = rawPath.split('/');
    const bucket = decodeURIComponent(segments[1] ?? '');
    const key = segments.length > 2 ? decodeURIComponent(segments.slice(2).join('/')) : '';

    if (!bucket) {
      if (method !== 'GET') throw new S3Error(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.');
      await demand(caller, req, 's3:ListAllMyBuckets', '*');
      const list = [...buckets.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, at]) => `<Bucket><Name>${xmlEscape(name)}</Name><CreationDate>${isoMs(at)}</CreationDate></Bucket>`)
        .join('');
      return xml(res, requestId, `<ListAllMyBucketsResult xmlns="${NS}"><Owner><ID>${OWNER_ID}</ID></Owner><Buckets>${list}</Buckets></ListAllMyBucketsResult>`);
    }
    bucketOf(bucket);
    const bucketArn = `arn:aws:s3:::${bucket}`;

    if (!key) {
      const sub = [...url.searchParams.keys()].filter((k) => !['list-type', 'prefix', 'delimiter', 'max-keys', 'encoding-type', 'continuation-token', 'start-after', 'marker', 'fetch-owner'].includes(k));
      if (sub.length > 0) throw new S3Error(501, 'NotImplemented', `The local S3 does not implement ?${sub[0]}.`);
      if (method === 'HEAD') {
        await demand(caller, req, 's3:ListBucket', bucketArn);
        return send(res, 200, { 'x-amz-bucket-region': 'us-east-1' }, '', requestId, true);
      }
      if (method === 'GET') return listObjects(req, res, url, bucket, caller, requestId);
      throw new S3Error(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.');
    }

    const objectArn = `${bucketArn}/${key}`;
    if (key.length > 1024) throw new S3Error(400, 'KeyTooLongError', 'Your key is too long');
    const sub = [...url.searchParams.keys()].filter((k) => !['x-id', 'partNumber'].includes(k));
    if (sub.length > 0) throw new S3Error(501, 'NotImplemented', `The local S3 does not implement ?${sub[0]}.`);
    switch (method) {
      case 'GET':
      case 'HEAD': {
        await demand(caller, req, 's3:GetObject', objectArn);
        const found = method === 'GET' ? store.get(bucket, key) : store.head(bucket, key);
        if (!found) {
          // S3 says whether a key exists only to callers who may list the bucket.
          if (!(await allowed(caller, req, 's3:ListBucket', bucketArn, { 's3:prefix': key }))) {
            throw new S3Error(403, 'AccessDenied', caller ? denialMessage(caller.arn, 's3:GetObject', objectArn, 'ImplicitlyDenied') : 'Access Denied');
          }
          throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
        }
        const meta = 'meta' in found ? found.meta : found;
        const range = rangeOf(req.headers.range, meta.size);
        if (method === 'HEAD') return send(res, 200, { ...objectHeaders(meta), 'content-length': meta.size }, '', requestId, true);
        const all = (found as { body: Buffer }).body;
        if (!range) return send(res, 200, objectHeaders(meta), all, requestId);
        return send(res, 206, { ...objectHeaders(meta), 'content-range': `bytes ${range[0]}-${range[1]}/${meta.size}` }, all.subarray(range[0], range[1] + 1), requestId);
      }
      case 'PUT': {
        if (req.headers['x-amz-copy-source']) throw new S3Error(501, 'NotImplemented', 'CopyObject is not implemented by the local S3.');
        if (url.searchParams.has('partNumber')) throw new S3Error(501, 'NotImplemented', 'Multipart uploads are not implemented by the local S3.');
        await demand(caller, req, 's3:PutObject', objectArn);
        const md5 = req.headers['content-md5'];
        if (typeof md5 === 'string' && md5 !== createHash('md5').update(body).digest('base64')) {
          throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
        }
        const metadata: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-amz-meta-') && typeof v === 'string') metadata[k.slice(11)] = v;
        const meta = newMeta(key, body, String(req.headers['content-type'] ?? 'binary/octet-stream'), metadata, auth.now());
        store.put(bucket, meta, body);
        return send(res, 200, { etag: meta.etag }, '', requestId);
      }
      case 'DELETE':
        await demand(caller, req, 's3:DeleteObject', objectArn);
        store.delete(bucket, key);
        return send(res, 204, {}, '', requestId);
      default:
        throw new S3Error(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.');
    }
  }

  const server = createServer((req, res) => {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    handle(req, res, requestId).catch((e: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const err = e instanceof S3Error ? e : new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
      const extra = Object.entries(err.extra)
        .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
        .join('');
      const text = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${err.code}</Code><Message>${xmlEscape(err.message)}</Message>${extra}<RequestId>${requestId}</RequestId><HostId>${randomUUID()}</HostId></Error>`;
      // A HEAD answer has no body: S3 sends the status (and its headers) only.
      send(res, err.status, { 'content-type': 'application/xml' }, text, requestId, req.method === 'HEAD');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
