/**
 * The `tvm` command: dispatches to one file per subcommand. Exit 0 on success, 1 on a refusal or
 * bad input (one line on stderr, never a stack trace), 2 on bad usage.
 */
import { EXIT, Refusal, UsageError, type Command, type Io } from './lib.js';

const USAGE = `usage: tvm <command> [options]

  dev [--config F] [--port N] [--data DIR] [--ephemeral]   run the local stack
  token [--sub S] [--aud A] [--claim k=v …] [--ttl S]      mint a token from the local dev issuer
  vend --grant G [--endpoint URL] [--token-file F] [--duration S] [--task T] [--tool T]
       [--sensitivity S] [--environment E] [--format json|env|credential-process]
  credential-process --grant G …                           vend for ~/.aws/config credential_process
  revoke LEASE_ID                                          revoke one of your own leases
  leases [--principal P] [--grant G] [--issuer I] [--task T] [--status S]
         [--since D] [--until D] [--limit N|--all] [--format table|json|ndjson|csv]   admin: list leases
  leases show ID                                           admin: a lease and its history
  admin revoke (--lease ID|--principal P|--grant G|--issuer I|--task T|--all) --reason R [--dry-run] [--yes]
  rotate VENDOR [--reason R] / vendors                     admin: vendor keys
  audit [--since D] [--until D] [--principal P] [--lease ID] [--grant G] [--type T] [--request-id ID]
        [--limit N|--all] [--format table|json|ndjson]         admin: the audit trail, newest first
  explain REQUEST_ID                                       admin: why a request was answered so, in words
  console [--endpoint URL] [--port N]                      admin: the ops console in a browser (loopback)
  policy check [--config F]                                validate config and policies
  policy eval --principal P --grant G [--context JSON]     explain a decision offline
  exec --grant G [vend options] -- CMD [ARGS…]             run CMD with credentials it never holds for long
  agent --grant G --listen 127.0.0.1:PORT --auth-token-file F   the same, as a sidecar

Run 'tvm <command> --help' for a command's options.
`;

const COMMANDS: Record<string, () => Promise<{ run: Command }>> = {
  dev: () => import('./commands/dev.js'),
  token: () => import('./commands/token.js'),
  vend: () => import('./commands/vend.js'),
  'credential-process': () => import('./commands/credential-process.js'),
  revoke: () => import('./commands/revoke.js'),
  leases: () => import('./commands/leases.js'),
  rotate: () => import('./commands/rotate.js'),
  vendors: () => import('./commands/vendors.js'),
  admin: async () => ({
    run: async (args: string[], io: Io) => {
      if (args[0] !== 'revoke') throw new UsageError("usage: tvm admin revoke (--lease ID|--principal P|--grant G|--issuer I|--task T|--all) --reason R [--dry-run] [--yes]");
      return (await import('./commands/admin-revoke.js')).run(args.slice(1), io);
    },
  }),
  policy: () => import('./commands/policy.js'),
  exec: () => import('./commands/exec.js'),
  agent: () => import('./commands/agent.js'),
  audit: () => import('./commands/audit.js'),
  explain: () => import('./commands/explain.js'),
  console: () => import('./commands/console.js'),
};

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    (name ? io.out : io.err)(USAGE);
    return name ? EXIT.ok : EXIT.usage;
  }
  const load = COMMANDS[name];
  if (!load) {
    io.err(`tvm: unknown command '${name}'\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    const { run } = await load();
    return await run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`tvm ${name}: ${e.message}\n`);
      return EXIT.usage;
    }
    if (e instanceof Refusal) {
      io.err(`tvm ${name}: ${e.message}\n`);
      return EXIT.refused;
    }
    io.err(`tvm ${name}: ${(e as Error)?.message?.split('\n')[0] ?? 'failed'}\n`);
    return EXIT.refused;
  }
}
