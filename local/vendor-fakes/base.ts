/**
 * What the vendor fakes share: a loopback HTTP server, the keys the vendor holds (persisted
 * under the data directory when one is given), a log of requests (method, path, header names and
 * the key headers' values, for tests), and fault injection per operation (status or delay).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';

export interface FakeKey {
  id: string;
  key: string;
  name: string;
  createdAt: string;
}

export interface SeenRequest {
  op: string;
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface Fault {
  op: string;
  /** Answer with this status (and the vendor's error body). */
  status?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** How many requests it applies to. */
  times: number;
}

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
  json(): unknown;
}

export interface FakeAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export function token(prefix: string, bytes = 16): string {
  return `${prefix}${randomBytes(bytes).toString('hex')}`;
}

const running = new Map<string, VendorFake>();

/** The fake listening at `url` in this process (tests reach a stack's fakes through the vendor's baseUrl). */
export function fakeAt(url: string): VendorFake | undefined {
  return running.get(url.replace(/\/+$/, ''));
}

export abstract class VendorFake {
  keys = new Map<string, FakeKey>();
  /** Keys revoked at this vendor, in order (tests assert on them). */
  revoked: string[] = [];
  seen: SeenRequest[] = [];
  faults: Fault[] = [];
  /** Test switch: answers echo the caller's key (body and a header), to prove the broker scrubs it. */
  echoKey = false;
  url = '';
  private server?: Server;

  constructor(
    readonly name: string,
    private readonly file?: string,
  ) {}

  /** The operation a request is (create, list, revoke, test, call) or undefined for an unknown route. */
  protected abstract route(req: FakeRequest): { op: string; run: () => FakeAnswer } | undefined;
  /** The vendor's error body for a status. */
  protected abstract errorBody(status: number): unknown;
  /** The management secret value tvm keeps for this vendor (JSON). */
  abstract managementSecret(): string;
  protected abstract managementState(): Record<string, string>;
  protected abstract restoreManagement(m: Record<string, string>): void;

  /** Makes the next `times` requests of `op` fail with `status` (or wait `delayMs`). */
  fail(op: string, status: number, times = 1): void {
    this.faults.push({ op, status, times });
  }
  delay(op: string, delayMs: number, times = 1): void {
    this.faults.push({ op, delayMs, times });
  }

  /** The latest request of an operation. */
  last(op: string): SeenRequest | undefined {
    for (let i = this.seen.length - 1; i >= 0; i--) if (this.seen[i].op === op) return this.seen[i];
    return undefined;
  }

  /** Live key values (tests look for them in logs and answers). */
  liveKeys(): FakeKey[] {
    return [...this.keys.values()];
  }

  isLive(key: string | undefined): boolean {
    return !!key && [...this.keys.values()].some((k) => k.key === key);
  }

  protected addKey(name: string, prefix: string, idPrefix: string): FakeKey {
    const k: FakeKey = { id: token(idPrefix, 8), key: token(prefix), name, createdAt: new Date().toISOString() };
    this.keys.set(k.id, k);
    this.persist();
    return k;
  }

  protected removeKey(id: string): boolean {
    const had = this.keys.delete(id);
    if (had) {
      this.revoked.push(id);
      this.persist();
    }
    return had;
  }

  load(): void {
    if (!this.file) return;
    try {
      const saved = JSON.parse(readFileSync(this.file, 'utf8')) as { keys: FakeKey[]; management: Record<string, string> };
      this.keys = new Map(saved.keys.map((k) => [k.id, k]));
      this.restoreManagement(saved.management);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.persist();
    }
  }

  protected persist(): void {
    if (!this.file) return;
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify({ keys: [...this.keys.values()], management: this.managementState() }), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  /** Listens on 127.0.0.1 (`port` 0: a free one) and answers the base URL. */
  async start(port = 0): Promise<string> {
    this.load();
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    running.set(this.url, this);
    return this.url;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    running.delete(this.url);
    const s = this.server;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const fr: FakeRequest = {
      method: (req.method ?? 'GET').toUpperCase(),
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
      json() {
        return body.length ? JSON.parse(body.toString('utf8')) : undefined;
      },
    };
    const r = this.route(fr);
    const op = r?.op ?? 'unknown';
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    this.seen.push({ op, method: fr.method, path: fr.path, headers });
    if (this.seen.length > 500) this.seen.shift();

    let answer: FakeAnswer;
    const fault = this.faults.find((f) => f.op === op && f.times > 0);
    if (fault) fault.times--;
    if (fault?.delayMs) await new Promise((r2) => setTimeout(r2, fault.delayMs));
    if (fault?.status) answer = { status: fault.status, body: this.errorBody(fault.status) };
    else if (!r) answer = { status: 404, body: this.errorBody(404) };
    else {
      try {
        answer = r.run();
      } catch {
        answer = { status: 400, body: this.errorBody(400) };
      }
    }
    if (res.destroyed) return;
    const out: Record<string, string> = { 'content-type': 'application/json', ...(answer.headers ?? {}) };
    if (answer.body === undefined) {
      res.writeHead(answer.status, answer.headers ?? {});
      res.end();
      return;
    }
    res.writeHead(answer.status, out);
    res.end(JSON.stringify(answer.body));
  }

  /** When echoKey is on: the key back in the body and in a header, as a careless vendor might. */
  protected echo(answer: FakeAnswer, key: string | undefined): FakeAnswer {
    if (!this.echoKey || !key) return answer;
    return { ...answer, body: { ...(answer.body as object), echoedKey: key }, headers: { ...(answer.headers ?? {}), 'x-echo-key': key, 'x-request-id': `req ${key}` } };
  }
}
