/**
 * `tvm console [--endpoint URL] [--port N]`: the ops console on a loopback server, in front of a
 * deployed tvm (or the running local stack). The page's admin calls are forwarded with
 * `adminCall`: signed with the operator's own AWS credentials (SigV4) for a deployed endpoint,
 * with the local admin token for the local stack. Neither reaches the browser, which holds only a
 * session cookie got once from the printed one-time link.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConsoleGate } from '../../console/gate.js';
import { adminCall, endpoint, EXIT, parse, Refusal, untilStopped, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm console [--endpoint URL] [--port N]

Serves the ops console on http://127.0.0.1:N (default: a free port) and prints a one-time link
to open in a browser: live leases with filters and paging, a lease's timeline and session policy,
revoke (one lease, a principal, a task) with a confirmation, vendors and rotate now, and a chart
of issuances, denials and revocations. Admin calls go to --endpoint (default $TVM_ENDPOINT, else
the running local stack), signed with your AWS credentials (SigV4) for a deployed tvm, or with
the local admin token for the local stack. Stop with Ctrl-C.
`;

export interface ConsoleServer {
  /** The one-time link to open. */
  url: string;
  close(): Promise<void>;
}

/** Starts the loopback console in front of `base`; answers its one-time link. */
export async function startConsoleServer(base: string, port: number, env: NodeJS.ProcessEnv): Promise<ConsoleServer> {
  const gate = createConsoleGate({
    forward: async ({ method, path, body }) => {
      try {
        return await adminCall(`${base}${path}`, { method, body }, env);
      } catch (e) {
        // The CLI's own one-line reason (no AWS credentials, cannot reach the endpoint): no secret in it.
        if (e instanceof Refusal) return { status: 503, body: { error: 'upstream_unavailable', message: e.message, requestId: 'console' } };
        throw e;
      }
    },
  });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/console' && !path.startsWith('/console/')) {
      res.writeHead(path === '/' ? 302 : 404, path === '/' ? { location: '/console' } : { 'content-type': 'text/plain' }).end(path === '/' ? '' : 'Not found.');
      return;
    }
    gate.handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"internal","message":"An internal error occurred.","requestId":"console"}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}/console?code=${gate.issueCode()}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { endpoint: { type: 'string' }, port: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals.length) throw new UsageError(`unexpected '${positionals[0]}'`);
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be a port number');
  const base = endpoint(values.endpoint, io.env);
  const consoleServer = await startConsoleServer(base, port, io.env);
  io.out(`tvm console for ${base}\n\n  open ${consoleServer.url}\n\nThe link works once (it sets a session cookie for this browser). Stop with Ctrl-C.\n`);
  const why = await untilStopped();
  io.err(`tvm console: stopping (${why})\n`);
  await consoleServer.close();
  return EXIT.ok;
}
