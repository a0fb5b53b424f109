/** `TVM_VENDOR_SECRETS` is checked at init: malformed, or missing a configured vendor, fails naming the variable. */
import { describe, expect, it } from 'vitest';
import { checkVendorSecrets, parseVendorSecrets } from '../../functions/shared/vendor-runtime.js';

const ids = { key: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:k', management: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:m' };

describe('TVM_VENDOR_SECRETS', () => {
  it('parses the map and accepts it when it covers every configured vendor', () => {
    expect(parseVendorSecrets(JSON.stringify({ datadog: ids }), [{ name: 'datadog' }])).toEqual({ datadog: ids });
    expect(parseVendorSecrets(undefined, [])).toEqual({});
  });

  it.each([
    ['not JSON', '{', /TVM_VENDOR_SECRETS: is not valid JSON/],
    ['a vendor without its management secret', JSON.stringify({ datadog: { key: ids.key } }), /TVM_VENDOR_SECRETS: datadog\.management/],
    ['an unknown field', JSON.stringify({ datadog: { ...ids, extra: 'x' } }), /TVM_VENDOR_SECRETS: datadog/],
    ['a configured vendor missing', JSON.stringify({ openai: ids }), /TVM_VENDOR_SECRETS: no secrets for the configured vendor datadog/],
    ['unset while a vendor is configured', undefined, /TVM_VENDOR_SECRETS: no secrets for the configured vendor datadog/],
  ])('refuses %s, naming the variable', (_what, text, message) => {
    expect(() => parseVendorSecrets(text, [{ name: 'datadog' }])).toThrow(message);
  });

  it('the ids a function was composed with are checked the same way', () => {
    expect(() => checkVendorSecrets({}, [{ name: 'acme' }, { name: 'openai' }])).toThrow(/no secrets for the configured vendors acme, openai/);
  });
});
