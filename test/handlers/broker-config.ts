/** The config the broker and vendor tests run: the example's issuers and grants plus one vendor of each kind. */
import { parse, stringify } from 'yaml';
import { ACME_HTTP_CONFIG } from '../../local/vendor-fakes/http.js';
import { EXAMPLE_CONFIG } from '../helpers/stack.js';

export function vendorYaml(overlap = '15m'): string {
  const config = parse(EXAMPLE_CONFIG) as Record<string, unknown>;
  config.vendors = [
    {
      name: 'datadog',
      kind: 'datadog',
      baseUrl: 'https://api.datadoghq.com',
      rotation: { every: '24h', overlap },
      broker: { allow: ['GET /api/v1/validate', 'POST /api/v2/series'] },
    },
    {
      name: 'openai',
      kind: 'openai',
      baseUrl: 'https://api.openai.com',
      projectId: 'proj_tvm',
      rotation: { every: '7d', overlap },
      broker: { allow: ['POST /v1/chat/completions', 'GET /v1/models'] },
    },
    {
      name: 'acme',
      kind: 'http',
      baseUrl: 'https://api.acme.example',
      rotation: { every: '30d', overlap },
      broker: { allow: ['GET /v1/*'], timeoutSeconds: 1 },
      http: ACME_HTTP_CONFIG,
    },
  ];
  return stringify(config);
}

export const VENDOR_POLICIES: Record<string, string> = {
  'vend.cedar': `@id("dev-agents-read-reports")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"reports-read")
when { principal.issuer == "dev" && principal.claims has team };`,
  'broker.cedar': `@id("dev-agents-use-vendors")
permit (principal, action == Tvm::Action::"broker", resource)
when { principal.issuer == "dev" && principal.claims has team };`,
};
