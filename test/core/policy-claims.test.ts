/**
 * policyClaims, pure: the claims Cedar sees (and `tvm policy eval` uses). A claim it cannot carry
 * refuses the token, and the refusal names the claim and why — what `tvm explain` shows.
 */
import { describe, expect, it } from 'vitest';
import { findIssuer, policyClaims, trimSlash } from '../../functions/core/verify-token.js';
import type { IssuerConfig } from '../../functions/core/config.js';

const nest = (depth: number, inner: unknown): unknown => (depth === 0 ? inner : [nest(depth - 1, inner)]);

describe('policyClaims', () => {
  it('keeps every JSON shape Cedar carries, in records without a prototype', () => {
    const out = policyClaims({ s: 'x', n: -3, t: true, f: false, set: ['a', 1], rec: { k: { j: 'v' } }, max: Number.MAX_SAFE_INTEGER });
    expect(JSON.parse(JSON.stringify(out))).toEqual({ s: 'x', n: -3, t: true, f: false, set: ['a', 1], rec: { k: { j: 'v' } }, max: Number.MAX_SAFE_INTEGER });
    expect(Object.getPrototypeOf(out)).toBeNull();
    expect(Object.getPrototypeOf(out.rec)).toBeNull();
  });

  it('nests eight deep, not nine', () => {
    expect(JSON.parse(JSON.stringify(policyClaims({ d: nest(8, 'x') })))).toEqual({ d: nest(8, 'x') });
    expect(() => policyClaims({ d: nest(9, 'x') })).toThrow(expect.objectContaining({ reason: 'claim_unsupported', detail: { claim: 'd[0][0][0][0][0][0][0][0]', why: 'nested too deeply' } }));
    expect(() => policyClaims({ r: { a: { b: { c: { d: { e: { f: { g: { h: {} } } } } } } } } })).toThrow(
      expect.objectContaining({ detail: { claim: 'r.a.b.c.d.e.f.g.h', why: 'nested too deeply' } }),
    );
    const eight = { r: { a: { b: { c: { d: { e: { f: { g: { h: 'x' } } } } } } } } };
    expect(JSON.parse(JSON.stringify(policyClaims(eight)))).toEqual(eight);
  });

  it.each([
    [{ groups: ['a', null] }, 'groups[1]', 'null'],
    [{ level: 1.5 }, 'level', 'number is not a safe integer'],
    [{ big: 2 ** 53 }, 'big', 'number is not a safe integer'],
    [{ obj: { x: [1, { __entity: 1 }] } }, 'obj.x[1].__entity', 'reserved name'],
    [{ __extn: 'x' }, '__extn', 'reserved name'],
    [{ o: { __expr: 'x' } }, 'o.__expr', 'reserved name'],
    [{ prototype: 'x' }, 'prototype', 'reserved name'],
    [{ f: () => 1 }, 'f', 'function'],
    [{ u: undefined }, 'u', 'undefined'],
  ])('refuses %j, naming %s: %s', (payload, claim, why) => {
    expect(() => policyClaims(payload as Record<string, unknown>)).toThrow(expect.objectContaining({ code: 'invalid_token', reason: 'claim_unsupported', detail: { claim, why } }));
  });
});

describe('findIssuer and trimSlash', () => {
  const issuers = [{ name: 'a', issuer: 'https://a.example/' }, { name: 'b', issuer: 'https://b.example' }] as IssuerConfig[];
  it('match one trailing slash either way, and nothing looser', () => {
    expect(findIssuer(issuers, 'https://a.example')?.name).toBe('a');
    expect(findIssuer(issuers, 'https://b.example/')?.name).toBe('b');
    expect(findIssuer(issuers, 'https://b.example//')).toBeUndefined();
    expect(findIssuer(issuers, 'https://b.exampl')).toBeUndefined();
    expect(trimSlash('x/')).toBe('x');
    expect(trimSlash('x')).toBe('x');
  });
});
