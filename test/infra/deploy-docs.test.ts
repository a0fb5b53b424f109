/**
 * docs/deploy.md against the code: every stack output it names exists in the synthesized stack,
 * and its `tvm vendors` sample is what the command prints for vendors not configured yet.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { run as vendors } from '../../cli/commands/vendors.js';
import { synthTemplate } from './helpers.js';

const DOC = readFileSync(new URL('../../docs/deploy.md', import.meta.url), 'utf8');

describe('docs/deploy.md', () => {
  it('names only stack outputs the stack has', () => {
    const named = new Set([
      ...[...DOC.matchAll(/OutputKey=='(\w+)'/g)].map((m) => m[1]),
      ...[...DOC.matchAll(/`(\w+Arn)` outputs?/g)].map((m) => m[1]),
      'LeasesRoleArn',
      'SweepRoleArn',
      'VendRoleArn',
    ]);
    expect(named.size).toBeGreaterThan(3);
    const outputs = Object.keys(synthTemplate().template.toJSON().Outputs ?? {});
    for (const name of named) expect(outputs, name).toContain(name);
  }, 180_000);

  it('shows what `tvm vendors` prints for a fresh deploy', async () => {
    const sample = /```sh\n\$ tvm vendors\n([\s\S]*?)```/.exec(DOC)![1];
    const answer = JSON.stringify({
      vendors: ['datadog', 'openai'].map((name) => ({ name, kind: name, configured: false, rotationInProgress: false, retiring: [], unresolved: [], events: [] })),
    });
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(answer));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      let out = '';
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const io = { out: (s: string) => void (out += s), err: () => undefined, env: { TVM_ADMIN_TOKEN: 'x' } };
      expect(await vendors(['--endpoint', endpoint], io as never)).toBe(0);
      expect(out).toBe(sample);
    } finally {
      server.close();
    }
  });
});
