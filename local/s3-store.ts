/**
 * Where the local S3 keeps its objects: in memory (an ephemeral stack), or one pair of files per
 * object under a folder (`<data>/s3/<bucket>/<sha256 of the key>.{json,bin}`: keys may be 1,024
 * bytes of anything, file names may not).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ObjectMeta {
  key: string;
  size: number;
  /** Quoted hex MD5, as S3 answers it for a single-part upload. */
  etag: string;
  /** Epoch ms. */
  lastModified: number;
  contentType: string;
  /** `x-amz-meta-*` headers, names lower-cased without the prefix. */
  metadata: Record<string, string>;
}

export interface ObjectStore {
  head(bucket: string, key: string): ObjectMeta | undefined;
  get(bucket: string, key: string): { meta: ObjectMeta; body: Buffer } | undefined;
  put(bucket: string, meta: ObjectMeta, body: Buffer): void;
  delete(bucket: string, key: string): void;
  /** Every object of the bucket, sorted by key (UTF-8 byte order, as S3 lists). */
  list(bucket: string): ObjectMeta[];
}

function byKey(a: ObjectMeta, b: ObjectMeta): number {
  return Buffer.compare(Buffer.from(a.key), Buffer.from(b.key));
}

export function memoryObjectStore(): ObjectStore {
  const buckets = new Map<string, Map<string, { meta: ObjectMeta; body: Buffer }>>();
  const of = (bucket: string) => {
    let b = buckets.get(bucket);
    if (!b) buckets.set(bucket, (b = new Map()));
    return b;
  };
  return {
    head: (bucket, key) => of(bucket).get(key)?.meta,
    get: (bucket, key) => of(bucket).get(key),
    put: (bucket, meta, body) => void of(bucket).set(meta.key, { meta, body }),
    delete: (bucket, key) => void of(bucket).delete(key),
    list: (bucket) => [...of(bucket).values()].map((o) => o.meta).sort(byKey),
  };
}

export function fileObjectStore(dir: string): ObjectStore {
  const folder = (bucket: string) => {
    const d = join(dir, bucket);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    return d;
  };
  const base = (bucket: string, key: string) => join(folder(bucket), createHash('sha256').update(key).digest('hex'));
  const atomic = (file: string, data: Buffer | string) => {
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, file);
  };
  const readMeta = (file: string): ObjectMeta | undefined => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ObjectMeta) : undefined);
  return {
    head: (bucket, key) => readMeta(`${base(bucket, key)}.json`),
    get(bucket, key) {
      const b = base(bucket, key);
      const meta = readMeta(`${b}.json`);
      return meta && existsSync(`${b}.bin`) ? { meta, body: readFileSync(`${b}.bin`) } : undefined;
    },
    put(bucket, meta, body) {
      const b = base(bucket, meta.key);
      // Body first: a crash in between leaves an unlisted body, never a listed object without one.
      atomic(`${b}.bin`, body);
      atomic(`${b}.json`, JSON.stringify(meta));
    },
    delete(bucket, key) {
      const b = base(bucket, key);
      rmSync(`${b}.json`, { force: true });
      rmSync(`${b}.bin`, { force: true });
    },
    list(bucket) {
      const d = folder(bucket);
      return readdirSync(d)
        .filter((f) => f.endsWith('.json'))
        .map((f) => readMeta(join(d, f))!)
        .sort(byKey);
    },
  };
}
