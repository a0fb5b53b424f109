/** The STS part (vend only): the client and the credential issuer over it. */
import { STSClient } from '@aws-sdk/client-sts';
import type { CredentialIssuer } from '../core/ports.js';
import { StsCredentialIssuer } from '../adapters/sts-credential-issuer.js';
import { sdkOptions, type Base } from './compose.js';

export interface StsParts {
  sts: STSClient;
  credentials: CredentialIssuer;
}

export function stsParts(base: Base): StsParts {
  const sts = new STSClient({ ...sdkOptions(base.settings), endpoint: base.settings.stsEndpoint });
  return { sts, credentials: new StsCredentialIssuer(sts) };
}
