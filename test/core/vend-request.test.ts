/**
 * The pure pieces of a vend: the duration bounds (the 400 a caller reads, before any grant is
 * looked up), the effective duration, and the Cedar request `tvm policy eval` shares.
 */
import { describe, expect, it } from 'vitest';
import type { GrantConfig } from '../../functions/core/config.js';
import { checkDuration, effectiveDuration, vendAuthzRequest } from '../../functions/core/vend-credentials.js';

const grant = { name: 'g', durationSeconds: { default: 1200, max: 1800 } } as GrantConfig;

describe('checkDuration', () => {
  it.each([899, 3601, 900.5, Number.NaN, -900])('refuses %s with the bounds in the message the caller reads', (requested) => {
    expect(() => checkDuration(requested)).toThrow(
      expect.objectContaining({ code: 'invalid_request', reason: 'duration_out_of_bounds', detail: { requested }, message: 'durationSeconds must be an integer from 900 to 3600.' }),
    );
  });

  it.each([undefined, 900, 3600, 1801])('accepts %s', (requested) => {
    expect(() => checkDuration(requested)).not.toThrow();
  });
});

describe('effectiveDuration', () => {
  it("is the grant's default when none is asked, the asked one up to the grant's max, and the max above it", () => {
    expect(effectiveDuration(grant, undefined)).toBe(1200);
    expect(effectiveDuration(grant, 900)).toBe(900);
    expect(effectiveDuration(grant, 1800)).toBe(1800);
    expect(effectiveDuration(grant, 3600)).toBe(1800);
    expect(() => effectiveDuration(grant, 600)).toThrow(expect.objectContaining({ reason: 'duration_out_of_bounds' }));
  });
});

describe('vendAuthzRequest', () => {
  it('asks for action vend on the grant, with the duration and source address in the context and absent values left out', () => {
    const who = { issuer: { name: 'dev' }, iss: 'https://i', sub: 's', claims: { team: 'blue' } } as never;
    expect(vendAuthzRequest(who, 'g', 900, { task: 't', tool: undefined }, '10.0.0.1')).toEqual({
      principal: { issuer: 'dev', iss: 'https://i', sub: 's', claims: { team: 'blue' } },
      action: 'vend',
      resource: { type: 'Grant', id: 'g' },
      context: { task: 't', durationSeconds: 900, sourceIp: '10.0.0.1' },
    });
    expect(vendAuthzRequest(who, 'g', 900, {}).context).toEqual({ durationSeconds: 900 });
  });
});
