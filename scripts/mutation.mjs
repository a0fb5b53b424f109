#!/usr/bin/env node
// npm run test:mutation [-- --group=a,b] [-- --list] [-- --summary] [-- <stryker options, e.g. --force>]
//
// StrykerJS over functions/core and functions/adapters, one group of files at a time, each group with
// its own committed incremental file reports/stryker/<group>.json (docs/testing.md, docs/mutation/).
// Groups keep a run's result even when a later group does not finish: Stryker writes its incremental
// file only at the end of a run. On a clean clone a rerun re-tests only the mutants whose source or
// covering tests changed. Concurrency 1: a run is one core's work for a long time.
//
// Each group names the files it mutates and the test files allowed to kill them (`--testFiles`); the
// folders of those tests become TVM_MUTATION_TESTS for vitest.mutation.config.ts (a static group's
// files themselves, without --testFiles: see main).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

export const GROUPS = {
  // docs/mutation/core-main.md (test/core)
  'core-main': {
    mutate: [
      'revoke-lease', 'sweep-leases', 'revoke-bulk', 'lease-pages', 'decision', 'check-config',
      'deny-policy', 'audit-events', 'explain', 'vend-credentials', 'verify-token', 'full-windows',
    ].map((f) => `functions/core/${f}.ts`),
    testFiles: ['test/core/**/*.test.ts'],
  },
  // docs/mutation/core-main.md, the files it did not re-run (pure, their own tests in test/core)
  'core-other': {
    mutate: ['config', 'lease', 'render-session-policy', 'ports'].map((f) => `functions/core/${f}.ts`),
    testFiles: ['test/core/**/*.test.ts'],
  },
  // docs/mutation/core-main.md, "Static mutants": config.ts's validation is mostly zod schemas built
  // at import, whose mutants `ignoreStatic` leaves out of every other group. This group runs them
  // (each reloads the test files, so only config.ts's own tests); its summary counts only the
  // mutants another group ignored as static, so nothing is counted twice.
  'core-config-static': {
    mutate: ['functions/core/config.ts'],
    testFiles: ['test/core/config.test.ts', 'test/core/check-config.test.ts'],
    static: true,
  },
  // docs/mutation/core-rotation.md (the pure tests of the vendor-key files)
  'core-rotation': {
    mutate: [
      'functions/core/rotation/**/*.ts', 'functions/core/rotate-vendor-key.ts', 'functions/core/vendor-config.ts',
      'functions/core/vendor-ports.ts', 'functions/core/errors.ts', 'functions/core/broker-request.ts',
    ],
    testFiles: [
      'test/core/rotation/**/*.test.ts', 'test/core/errors.test.ts', 'test/core/vendor-config.test.ts',
      'test/core/broker-use-case.test.ts', 'test/core/broker-request.test.ts',
      // the admin route's deadline (rotateVendorKey with a deadline) is driven from its handler
      'test/handlers/admin-deadline.test.ts',
    ],
  },
  // docs/mutation/adapters.md
  'adapters-small': {
    mutate: ['dynamodb-replay-guard', 'dynamodb-rate-limiter', 'sts-credential-issuer', 'jwks-keys'].map(adapter),
    testFiles: [
      'dynamodb-replay-guard', 'moto-replay-guard', 'dynamodb-rate-limiter', 'sts-credential-issuer', 'jwks-keys',
    ].map(adapterTest),
  },
  'adapters-leases': {
    mutate: ['dynamodb-lease-store', 'random-ids'].map(adapter),
    // Not moto-lease-store.test.ts (its fast-check property over moto costs ~47 min a run here):
    // it can only kill more, so the group's score is a lower bound (docs/mutation/adapters.md).
    testFiles: ['dynamodb-lease-store', 'lease-store-paging', 'random-ids'].map(adapterTest),
  },
  'adapters-secrets': {
    mutate: ['local-secret-store', 'secrets-manager-store', 'dynamodb-vendor-state'].map(adapter),
    testFiles: ['local-secret-store', 'moto-secrets-manager', 'dynamodb-vendor-state'].map(adapterTest),
  },
  'adapters-vendors': {
    mutate: ['http-vendor', 'openai-vendor', 'datadog-vendor'].map(adapter),
    testFiles: ['http-vendor', 'openai-vendor', 'datadog-vendor', 'moto-secrets-manager'].map(adapterTest),
  },
  'adapters-logs': {
    mutate: ['logs-insights-event-source'].map(adapter),
    testFiles: ['moto-logs-insights', 'logs-insights-wire'].map(adapterTest),
  },
  'adapters-cedar': {
    mutate: ['cedar-policy'].map(adapter),
    testFiles: ['test/core/cedar-policy.test.ts', 'test/core/config.test.ts', adapterTest('cedar-wasm-deopt')],
  },
  'adapters-revoker': {
    mutate: ['iam-role-revoker', 'cross-account-iam'].map(adapter),
    testFiles: ['iam-role-revoker', 'iam-role-revoker-faults', 'iam-role-revoker-protocol', 'moto-iam-role-revoker', 'cross-account-iam'].map(adapterTest),
  },
  // docs/mutation/static.md: the static mutants of every other file (a table of reason words, a
  // regex, a Set built at import). `lines: 'static'` mutates only the lines where the other groups
  // left mutants out as static (their committed results), so a run re-tests those and not the
  // runtime mutants the other groups already measure; each static mutant reloads the named tests.
  // Last in the list: their line ranges come from the groups above.
  'core-static-explain': {
    mutate: ['functions/core/explain.ts'],
    testFiles: ['test/core/explain.test.ts', 'test/core/explain-words.test.ts'],
    static: true,
    lines: 'static',
  },
  'core-static-vendor': {
    mutate: ['vendor-config', 'broker-request', 'vendor-ports', 'errors', 'rotation/run', 'rotation/vendor-key'].map((f) => `functions/core/${f}.ts`),
    testFiles: [
      'test/core/vendor-config.test.ts', 'test/core/broker-request.test.ts', 'test/core/broker-use-case.test.ts',
      'test/core/errors.test.ts', 'test/core/rotation/**/*.test.ts',
    ],
    static: true,
    lines: 'static',
  },
  'core-static-other': {
    mutate: ['verify-token', 'lease', 'render-session-policy', 'deny-policy', 'revoke-bulk', 'audit-events', 'sweep-leases'].map((f) => `functions/core/${f}.ts`),
    testFiles: [
      'verify-token', 'policy-claims', 'lease', 'render-session-policy', 'deny-policy', 'deny-policy-units', 'deny-policy-property',
      'revoke-bulk', 'revoke-bulk-paths', 'revoke', 'audit-events', 'sweep', 'sweep-paths', 'sweep-property',
    ].map((f) => `test/core/${f}.test.ts`),
    static: true,
    lines: 'static',
  },
  'adapters-static': {
    mutate: [
      'cedar-policy', 'iam-role-revoker', 'jwks-keys', 'secrets-manager-store', 'sts-credential-issuer', 'random-ids',
      'dynamodb-lease-store', 'cross-account-iam', 'http-vendor',
    ].map(adapter),
    testFiles: [
      'test/core/cedar-policy.test.ts', 'test/core/config.test.ts',
      ...[
        'cedar-wasm-deopt', 'iam-role-revoker', 'iam-role-revoker-faults', 'iam-role-revoker-protocol', 'moto-iam-role-revoker',
        'cross-account-iam', 'jwks-keys', 'moto-secrets-manager', 'sts-credential-issuer', 'random-ids', 'dynamodb-lease-store',
        'lease-store-paging', 'http-vendor',
      ].map(adapterTest),
    ],
    static: true,
    lines: 'static',
  },
};

function adapter(name) {
  return `functions/adapters/${name}.ts`;
}
function adapterTest(name) {
  return `test/adapters/${name}.test.ts`;
}

export const incrementalFileOf = (group) => `reports/stryker/${group}.json`;

const mutantKey = (file, m) =>
  `${file}:${m.location.start.line}:${m.location.start.column}:${m.location.end.line}:${m.location.end.column}:${m.mutatorName}:${m.replacement}`;

/** The mutants the non-static groups left out as static (`ignoreStatic`): `{ file, m }` each. */
function ignoredAsStatic() {
  const out = [];
  for (const [group, { static: isStatic }] of Object.entries(GROUPS)) {
    if (isStatic || !existsSync(incrementalFileOf(group))) continue;
    for (const [file, { mutants }] of Object.entries(JSON.parse(readFileSync(incrementalFileOf(group), 'utf8')).files)) {
      for (const m of mutants) if (m.status === 'Ignored' && /static/i.test(m.statusReason ?? '')) out.push({ file, m });
    }
  }
  return out;
}

/**
 * `file:first-last` line ranges of `files` that hold a mutant another group left out as static
 * (overlapping and adjacent ranges merged), for Stryker's `--mutate`.
 */
export function staticRanges(files) {
  const spans = new Map();
  for (const { file, m } of ignoredAsStatic()) {
    if (!files.includes(file)) continue;
    if (!spans.has(file)) spans.set(file, []);
    spans.get(file).push([m.location.start.line, m.location.end.line]);
  }
  const out = [];
  for (const file of files) {
    const merged = [];
    for (const [a, b] of (spans.get(file) ?? []).sort((x, y) => x[0] - y[0] || x[1] - y[1])) {
      const last = merged.at(-1);
      if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
      else merged.push([a, b]);
    }
    out.push(...merged.map(([a, b]) => `${file}:${a}-${b}`));
  }
  return out;
}

/** The mutantKeys of `ignoredAsStatic()`. */
const staticKeys = () => new Set(ignoredAsStatic().map(({ file, m }) => mutantKey(file, m)));

/**
 * Per-file counts from a group's incremental file (the committed result). A static group counts
 * only the mutants the other groups ignored as static (the rest are theirs): `ignored`, their
 * mutantKeys, read from the other groups' files when not given.
 */
export function summarize(group, ignored) {
  const file = incrementalFileOf(group);
  if (!existsSync(file)) return [];
  const { files } = JSON.parse(readFileSync(file, 'utf8'));
  const only = GROUPS[group]?.static ? (ignored ?? staticKeys()) : undefined;
  return Object.entries(files).map(([name, { mutants: all }]) => {
    const mutants = only ? all.filter((m) => only.has(mutantKey(name, m))) : all;
    const count = (s) => mutants.filter((m) => m.status === s).length;
    const row = {
      file: name, killed: count('Killed'), survived: count('Survived'), noCoverage: count('NoCoverage'),
      timeout: count('Timeout'), ignored: count('Ignored'), errors: count('CompileError') + count('RuntimeError'),
    };
    const valid = row.killed + row.timeout + row.survived + row.noCoverage;
    return { ...row, score: valid === 0 ? null : (100 * (row.killed + row.timeout)) / valid };
  });
}

function printSummary(groups) {
  const total = { killed: 0, timeout: 0, survived: 0, noCoverage: 0 };
  const folders = {};
  const ignored = groups.some((g) => GROUPS[g].static) ? staticKeys() : undefined;
  for (const group of groups) {
    for (const r of summarize(group, ignored)) {
      const folder = r.file.split('/').slice(0, 2).join('/');
      folders[folder] ??= { killed: 0, timeout: 0, survived: 0, noCoverage: 0 };
      for (const k of Object.keys(total)) folders[folder][k] += r[k];
      const score = r.score === null ? 'n/a' : `${r.score.toFixed(1)} %`;
      console.log(`${group.padEnd(17)} ${r.file.padEnd(48)} killed ${r.killed} survived ${r.survived} ` +
        `no-coverage ${r.noCoverage} timeout ${r.timeout}  ${score}`);
    }
  }
  for (const [folder, c] of Object.entries(folders)) {
    const valid = c.killed + c.timeout + c.survived + c.noCoverage;
    console.log(`${folder}: ${(valid ? (100 * (c.killed + c.timeout)) / valid : 0).toFixed(1)} % ` +
      `(${c.killed + c.timeout} of ${valid} killed or timed out)`);
  }
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/**
 * One moto_server for every group (test/helpers/moto.ts resets it for each test file): a server
 * per test file per mutant costs its ~30 s start each time, more than most mutants' tests.
 */
async function startSharedMoto() {
  const endpoint = `http://127.0.0.1:${await freePort()}`;
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', endpoint.split(':')[2]], {
    stdio: 'ignore',
    env: { ...process.env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
  });
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode})`);
    try {
      if ((await fetch(`${endpoint}/moto-api/`)).ok) return { endpoint, close: () => child.kill('SIGTERM') };
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto_server did not start on ${endpoint}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const usesMoto = (testFiles) =>
  testFiles.some((t) => !t.includes('*') && existsSync(t) && readFileSync(t, 'utf8').includes('startMoto('));

const run = (cmd, args, env) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'inherit', env });
    child.once('exit', (code, signal) => resolve(code ?? signal));
  });

async function main(argv) {
  const groupArg = argv.find((a) => a.startsWith('--group='));
  const selected = groupArg ? groupArg.slice('--group='.length).split(',') : Object.keys(GROUPS);
  const unknown = selected.filter((g) => !(g in GROUPS));
  if (unknown.length) {
    console.error(`unknown group(s): ${unknown.join(', ')}; groups: ${Object.keys(GROUPS).join(', ')}`);
    return 2;
  }
  if (argv.includes('--list')) {
    for (const g of selected) console.log(`${g}: ${GROUPS[g].mutate.join(' ')}\n  tests: ${GROUPS[g].testFiles.join(' ')}`);
    return 0;
  }
  if (argv.includes('--summary')) {
    printSummary(selected);
    return 0;
  }
  const passThrough = argv.filter((a) => !a.startsWith('--group='));
  let moto;
  if (selected.some((g) => usesMoto(GROUPS[g].testFiles)) && !process.env.TVM_MOTO_ENDPOINT) {
    moto = await startSharedMoto();
    console.log(`moto_server for this run: ${moto.endpoint}`);
  }
  // test/helpers/infra-table.ts: the stack's table synthesized once per run, not once per mutant
  const scratch = mkdtempSync(join(tmpdir(), 'tvm-mutation-'));
  const infraTableCache = join(scratch, 'infra-table.json');
  let failed = 0;
  for (const group of selected) {
    const { testFiles, static: isStatic, lines } = GROUPS[group];
    const mutate = lines === 'static' ? staticRanges(GROUPS[group].mutate) : GROUPS[group].mutate;
    if (mutate.length === 0) {
      console.log(`\n== ${group}: no mutant of its files is left out as static by another group; nothing to run`);
      continue;
    }
    // A static group names its test files to vitest itself, not with --testFiles: with a test
    // filter Stryker activates a static mutant after the module has loaded, so every one of them
    // "survives" (stryker-js#6144, #6209; seen here: 184 of 184).
    const folders = isStatic ? testFiles.map((t) => t.slice('test/'.length)) : [...new Set(testFiles.map((t) => t.split('/')[1]))];
    let configFile = 'stryker.config.json';
    if (isStatic) {
      // the same configuration with static mutants run (Stryker has no command-line switch to turn it off)
      configFile = join(scratch, 'stryker.static.config.json');
      const base = JSON.parse(readFileSync('stryker.config.json', 'utf8'));
      delete base.$schema;
      writeFileSync(configFile, JSON.stringify({ ...base, ignoreStatic: false }));
    }
    const args = [
      'stryker', 'run', configFile, '--concurrency', '1', '--incremental',
      '--incrementalFile', incrementalFileOf(group), '--mutate', mutate.join(','), ...(isStatic ? [] : ['--testFiles', testFiles.join(',')]),
      // Stryker's incremental mode does not re-test a static mutant whose tests changed (it has no
      // per-test coverage of one to compare), so a static group re-tests all of its mutants (minutes).
      ...(isStatic && !passThrough.includes('--force') ? ['--force'] : []),
      ...passThrough,
    ];
    console.log(`\n== ${group}: TVM_MUTATION_TESTS=${folders.join(',')} npx ${args.join(' ')}`);
    const status = await run('npx', args, {
      ...process.env, TVM_MUTATION_TESTS: folders.join(','), TVM_INFRA_TABLE_CACHE: infraTableCache, ...(moto ? { TVM_MOTO_ENDPOINT: moto.endpoint } : {}),
    });
    if (status !== 0) {
      console.error(`== ${group}: stryker exited ${status}`);
      failed += 1;
    }
  }
  moto?.close();
  rmSync(scratch, { recursive: true, force: true });
  printSummary(selected);
  return failed ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main(process.argv.slice(2));
