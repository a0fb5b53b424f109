/**
 * The `vendors` section of tvm.yaml (`core/vendor-config.ts`): durations, and the rules that tie
 * a vendor's kind to what it needs. The messages are what an operator reads from `tvm check`.
 */
import { describe, expect, it } from 'vitest';
import { ZodIssueCode } from 'zod';
import { parseDurationSeconds, vendorSchema } from '../../functions/core/vendor-config.js';

describe('parseDurationSeconds', () => {
  it.each([
    ['30s', 30],
    ['1s', 1],
    ['15m', 900],
    ['24h', 86_400],
    ['7d', 604_800],
    ['0s', 0],
    ['120m', 7200],
  ])('%s → %d', (text, want) => {
    expect(parseDurationSeconds(text)).toBe(want);
  });

  it.each(['', 's', '15', '15 m', ' 15m', '15m ', '1.5h', '-1h', '15M', '15w', '15ms', 'x15m', '15mm', '1h30m'])('%j is not a duration', (text) => {
    expect(parseDurationSeconds(text)).toBeUndefined();
  });
});

const base = {
  name: 'datadog',
  kind: 'datadog',
  baseUrl: 'https://api.datadoghq.com',
  rotation: { every: '24h', overlap: '15m' },
  broker: { allow: ['GET /api/v1/validate'] },
};

const http = {
  keyHeader: 'X-Api-Key',
  managementHeader: 'Authorization',
  create: { method: 'POST', path: '/keys', keyPath: 'key', idPath: 'id' },
  test: { method: 'GET', path: '/me' },
  revoke: { method: 'DELETE', path: '/keys/{keyId}' },
};

/**
 * The problems zod reports, as `path: message`. Each is a well-formed zod issue: its code one of
 * zod's (what a caller switches on, as compiled-config.ts does), the kind rules' `custom`.
 */
function problems(input: unknown): string[] {
  const r = vendorSchema.safeParse(input);
  if (r.success) return [];
  for (const i of r.error.issues) expect(Object.values(ZodIssueCode)).toContain(i.code);
  return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('vendorSchema', () => {
  it('fills the broker defaults: a 25 s timeout, a 30 s key cache', () => {
    expect(vendorSchema.parse(base).broker).toEqual({ allow: ['GET /api/v1/validate'], timeoutSeconds: 25, keyCacheSeconds: 30 });
  });

  it.each([
    ['a datadog vendor', base],
    ['an openai vendor with its project', { ...base, name: 'openai', kind: 'openai', projectId: 'proj_abc-1' }],
    ['an http vendor with its requests', { ...base, name: 'acme', kind: 'http', http }],
    ['an overlap one second shorter than the period', { ...base, rotation: { every: '60s', overlap: '59s' } }],
  ])('accepts %s', (_label, input) => {
    expect(problems(input)).toEqual([]);
  });

  it.each<[string, unknown, string[]]>([
    ['openai without a project', { ...base, kind: 'openai' }, ['projectId: is required for kind openai']],
    ['a project on a datadog vendor', { ...base, projectId: 'proj_abc' }, ['projectId: is only for kind openai']],
    ['http without its requests', { ...base, kind: 'http' }, ['http: is required for kind http']],
    ['http requests on a datadog vendor', { ...base, http }, ['http: is only for kind http']],
    ['http requests on an openai vendor', { ...base, kind: 'openai', projectId: 'proj_abc', http }, ['http: is only for kind http']],
    ['an overlap as long as the period', { ...base, rotation: { every: '1h', overlap: '60m' } }, ['rotation.overlap: must be shorter than rotation.every']],
    ['an overlap longer than the period', { ...base, rotation: { every: '1h', overlap: '2h' } }, ['rotation.overlap: must be shorter than rotation.every']],
    ['a zero period', { ...base, rotation: { every: '0s', overlap: '15m' } }, ['rotation.every: must be a duration like 30s, 15m, 24h or 7d', 'rotation.overlap: must be shorter than rotation.every']],
    ['a period that is not a duration', { ...base, rotation: { every: 'daily', overlap: '15m' } }, ['rotation.every: must be a duration like 30s, 15m, 24h or 7d']],
    ['a zero overlap', { ...base, rotation: { every: '1h', overlap: '0m' } }, ['rotation.overlap: must be a duration like 30s, 15m, 24h or 7d']],
  ])('refuses %s, saying where and why', (_label, input, want) => {
    expect(problems(input)).toEqual(want);
  });

  it('an openai vendor with http requests and no project gets both problems', () => {
    expect(problems({ ...base, kind: 'openai', http })).toEqual(['projectId: is required for kind openai', 'http: is only for kind http']);
  });
});

/**
 * Every rule of a vendor from both sides: a value just inside is kept, one just outside refused
 * with the rule's own message at its path. Regexes are probed at both ends (junk before, after).
 */
describe('vendorSchema: each rule, inside and outside', () => {
  const httpVendor = (h: Record<string, unknown> = {}) => ({ ...base, name: 'acme', kind: 'http', http: { ...http, ...h } });

  it.each([['Acme'], ['acme!'], ['ac me']])('a vendor name %j is refused', (name) => {
    expect(problems({ ...base, name })).toEqual(['name: must match [a-z0-9-]+']);
  });

  it('two broker allow entries, a * method and a path with a * segment are kept; none is refused', () => {
    const allow = ['GET /api/v1/validate', '* /api/v2/*/metrics'];
    expect(vendorSchema.parse({ ...base, broker: { allow } }).broker.allow).toEqual(allow);
    expect(problems({ ...base, broker: { allow: [] } })).toEqual(['broker.allow: Array must contain at least 1 element(s)']);
  });

  it.each([['xGET /api'], ['GET /api x'], ['GET api'], ['FETCH /api']])('a broker allow entry %j is refused', (entry) => {
    expect(problems({ ...base, broker: { allow: [entry] } })).toEqual(['broker.allow.0: must be "METHOD /path" (path may end with /* or use * for one segment)']);
  });

  it('http requests with PUT and PATCH, dotted JSON paths and a list request are kept', () => {
    const h = {
      create: { method: 'PUT', path: '/keys/{keyName}', keyPath: 'data.attributes.key', idPath: 'data.id' },
      revoke: { method: 'PATCH', path: '/keys/{keyId}', body: { disabled: true } },
      list: { method: 'GET', path: '/keys', itemsPath: 'data', idPath: 'id', namePath: 'attributes.name' },
    };
    expect(problems(httpVendor(h))).toEqual([]);
    expect(vendorSchema.parse(httpVendor(h)).http).toMatchObject(h);
  });

  it('a request path that does not start with / is refused', () => {
    expect(problems(httpVendor({ test: { method: 'GET', path: 'me' } }))).toEqual(['http.test.path: Invalid input: must start with "/"']);
  });

  it.each([['X_Api_Key'], ['X-Api-Key:'], [' X-Api-Key']])('a key header %j is refused', (keyHeader) => {
    expect(problems(httpVendor({ keyHeader }))).toEqual(['http.keyHeader: must be an HTTP header name']);
  });

  it.each([['.data.id'], ['data.id.'], ['data..id'], ['data id']])('a JSON path %j is refused', (keyPath) => {
    expect(problems(httpVendor({ create: { ...http.create, keyPath } }))).toEqual(['http.create.keyPath: must be a dot path like data.id']);
  });

  it.each([['proj abc'], ['!proj_abc'], ['proj_abc!']])('an OpenAI project id %j is refused', (projectId) => {
    expect(problems({ ...base, name: 'openai', kind: 'openai', projectId })).toEqual(['projectId: must be an OpenAI project id like proj_abc']);
  });
});
