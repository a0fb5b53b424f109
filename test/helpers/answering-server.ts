/**
 * A loopback HTTP server whose answer each test sets (status, headers, raw body; or drop the
 * connection, never answer, or cut the body short), recording every request: a vendor answering exactly what a test
 * needs, over the real wire.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Answer = { status: number; headers?: Record<string, string>; body?: string | Buffer } | 'drop' | 'hang' | 'truncate';
export interface SeenCall {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
export interface AnsweringServer {
  url: string;
  seen: SeenCall[];
  answer: (req: IncomingMessage) => Answer;
  close(): Promise<void>;
}

/** `json(201, {...})`: an answer function for a JSON body. */
export const json = (status: number, body: unknown) => (): Answer => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

export async function startAnsweringServer(): Promise<AnsweringServer> {
  const out: AnsweringServer = { url: '', seen: [], answer: json(200, {}), close: async () => {} };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      out.seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const a = out.answer(req);
      if (a === 'hang') return;
      if (a === 'drop') return void req.socket.destroy();
      if (a === 'truncate') {
        // headers promise 100 bytes; 3 come, then the connection closes
        res.writeHead(200, { 'content-length': '100' });
        res.write('abc', () => req.socket.destroy());
        return;
      }
      res.writeHead(a.status, a.headers ?? {});
      res.end(a.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  out.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  out.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return out;
}

/** What a promise rejected with (tvm's errors carry code, reason, detail); fails if it resolved. */
export async function refusal<E = Error & { code?: string; reason?: string; detail?: Record<string, unknown>; status?: number; vendorMessage?: string }>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (e) {
    return e as E;
  }
  throw new Error('expected a refusal');
}
