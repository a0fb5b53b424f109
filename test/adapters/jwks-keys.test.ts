/** Where an issuer's discovery document may send tvm for keys. */
import { describe, expect, it } from 'vitest';
import { checkJwksUri } from '../../functions/adapters/jwks-keys.js';

describe('checkJwksUri', () => {
  it.each([
    ['https://token.actions.githubusercontent.com', 'http://token.actions.githubusercontent.com/.well-known/jwks', 'http from an https issuer'],
    ['https://issuer.example.com', 'http://127.0.0.1:9001/2018-06-01/runtime/invocation/next', 'the Lambda runtime API on loopback'],
    ['https://issuer.example.com', 'https://127.0.0.1/jwks', 'https to loopback'],
    ['https://issuer.example.com', 'https://127.1.2.3/jwks', 'https to 127/8'],
    ['https://issuer.example.com', 'https://localhost/jwks', 'localhost'],
    ['https://issuer.example.com', 'https://[::1]/jwks', 'IPv6 loopback'],
    ['https://issuer.example.com', 'https://[::ffff:127.0.0.1]/jwks', 'IPv4-mapped loopback'],
    ['https://issuer.example.com', 'http://169.254.169.254/latest/meta-data/', 'instance metadata (link-local)'],
    ['https://issuer.example.com', 'https://169.254.169.254/jwks', 'link-local over https'],
    ['https://issuer.example.com', 'https://0.0.0.0/jwks', '0.0.0.0'],
    ['https://issuer.example.com', 'https://2130706433/jwks', 'loopback as one decimal number'],
    ['https://issuer.example.com', 'https://0x7f.1/jwks', 'loopback in hex shorthand'],
    ['https://issuer.example.com', 'file:///etc/passwd', 'a file URL'],
    ['http://issuer.example.com', 'http://issuer.example.com/jwks', 'an http issuer off loopback'],
    ['http://127.0.0.1:8787/_dev/issuer', 'http://evil.example.com/jwks', 'a loopback issuer naming a remote http JWKS'],
  ])('refuses %s → %s (%s)', (issuer, uri) => {
    expect(() => checkJwksUri(issuer, uri)).toThrow();
  });

  it.each([
    ['https://token.actions.githubusercontent.com', 'https://token.actions.githubusercontent.com/.well-known/jwks'],
    ['https://issuer.example.com', 'https://keys.example.net/jwks'],
    ['http://127.0.0.1:8787/_dev/issuer', 'http://127.0.0.1:8787/_dev/issuer/jwks'],
    ['http://localhost:8787', 'http://localhost:8787/jwks'],
  ])('accepts %s → %s', (issuer, uri) => {
    expect(checkJwksUri(issuer, uri).href).toBe(new URL(uri).href);
  });
});
