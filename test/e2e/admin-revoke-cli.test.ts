/**
 * `tvm admin revoke` on the real local stack: typos are refusals (exit 1) or bad usage (exit 2),
 * never "revoked 0" with exit 0; --all needs --yes; --dry-run lists and changes nothing; by task
 * revokes exactly the task's leases and prints their ids; the route answers {revoked, leaseIds}.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/tvm.js';
import type { Io } from '../../cli/lib.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
const task: string[] = [];
const other: string[] = [];

beforeAll(async () => {
  stack = await startTestStack();
  for (let i = 0; i < 6; i++) {
    const a = await stack.vend({ grant: 'reports-read', context: i < 3 ? { task: 'INC-9' } : { task: 'nightly' } }, await stack.mintToken({ team: 'analytics' }, { sub: `agent-${i}` }));
    expect(a.status).toBe(200);
    (i < 3 ? task : other).push(a.body.leaseId);
  }
}, 60_000);
afterAll(() => stack?.close());

async function tvm(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), env: { TVM_ENDPOINT: stack.api, TVM_ADMIN_TOKEN: stack.adminToken } };
  return { code: await main(args, io), out, err };
}

const status = async (id: string) => (await stack.runtime.leases.get(id))!.status;

describe('tvm admin revoke', () => {
  it.each([
    ['a principal without an issuer', 2, ['--principal', 'agent-2']],
    ['a misspelt grant', 1, ['--grant', 'reports-reed']],
    ['an unknown issuer', 1, ['--issuer', 'nope']],
    ['a principal of an unknown issuer', 1, ['--principal', 'nope|agent-2']],
    ['--all without --yes', 2, ['--all']],
  ])('%s: exit %i and nothing revoked', async (_n, code, args) => {
    const r = await tvm('admin', 'revoke', ...args, '--reason', 'typo');
    expect(r.code).toBe(code);
    expect(r.out).toBe('');
    expect(r.err).not.toMatch(/revoked 0/);
    for (const id of [...task, ...other]) expect(await status(id)).toBe('active');
  });

  it('--dry-run prints the ids it would revoke and changes nothing', async () => {
    const r = await tvm('admin', 'revoke', '--task', 'INC-9', '--reason', 'look first', '--dry-run');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^would revoke 3 leases/);
    for (const id of task) expect(r.out).toContain(id);
    for (const id of [...task, ...other]) expect(await status(id)).toBe('active');
  });

  it('--task revokes exactly the leases of that task and prints them', async () => {
    const r = await tvm('admin', 'revoke', '--task', 'INC-9', '--reason', 'INC-9 contained');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^revoked 3 leases/);
    for (const id of task) {
      expect(r.out).toContain(id);
      expect(await status(id)).toBe('revoked');
    }
    for (const id of other) expect(await status(id)).toBe('active');
  });

  it('the route answers the revoked ids; a principal not issuer|sub is a 400 there too', async () => {
    const call = (body: unknown) =>
      fetch(`${stack.api}/v1/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const bad = await call({ principal: 'agent-4', reason: 'x' });
    expect(bad.status).toBe(400);
    const unknown = await call({ grant: 'reports-reed', reason: 'x' });
    expect(unknown.status).toBe(404);
    const ok = await call({ principal: 'dev|agent-4', reason: 'compromised' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ revoked: 1, leaseIds: [other[1]], fallbacks: 0 });
  });

  it('--all --yes revokes what is left', async () => {
    const r = await tvm('admin', 'revoke', '--all', '--yes', '--reason', 'drill');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^revoked 2 leases/);
  });
});
