/**
 * The deployed example does something: synth's config has no policy for an issuer it lacks
 * (synth refuses one), and a GitHub Actions token can vend and broker under it.
 */
import { describe, expect, it } from 'vitest';
import { forDeployment, issuersNamedBy, type TvmConfig } from '../../functions/core/config.js';
import { renderSessionPolicy } from '../../functions/core/render-session-policy.js';
import { createCedarPolicyEngine } from '../../functions/adapters/cedar-policy.js';
import { loadConfig } from '../../functions/shared/load-config.js';

const GITHUB = 'https://token.actions.githubusercontent.com';
const claims = {
  repository: 'acme/app',
  repository_owner: 'acme',
  repository_id: '123456',
  ref: 'refs/heads/main',
  job_workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main',
};
const principal = { issuer: 'github', iss: GITHUB, sub: 'repo:acme/app:ref:refs/heads/main', claims };

describe('the deployed example', () => {
  const { config: deployed, problems } = forDeployment(loadConfig('config/tvm.yaml'));

  it('deploys without problems, and no policy names an issuer it does not have', () => {
    expect(problems).toEqual([]);
    const names = new Set(deployed.issuers.map((i) => i.name));
    expect(deployed.cedar.flatMap((p) => issuersNamedBy(p.text)).filter((n) => !names.has(n))).toEqual([]);
  });

  it('lets a GitHub Actions token vend a grant whose session policy fills in from GitHub claims', () => {
    const policy = createCedarPolicyEngine(deployed);
    const allowed = deployed.grants.filter(
      (g) => policy.decide({ principal, action: 'vend', resource: { type: 'Grant', id: g.name }, context: { durationSeconds: 900 } }).allow,
    );
    expect(allowed.map((g) => g.name)).toContain('ci-reports-read');
    const grant = deployed.grants.find((g) => g.name === 'ci-reports-read')!;
    const rendered = renderSessionPolicy(grant, { principal: 'github|x', claims, context: {}, leaseId: 'l-1' } as never);
    expect(rendered).toContain('arn:aws:s3:::reports/acme/*');
  });

  it('lets that token call a vendor through the broker', () => {
    const policy = createCedarPolicyEngine(deployed);
    expect(policy.decide({ principal, action: 'broker', resource: { type: 'Vendor', id: 'datadog' }, context: { method: 'GET', path: '/api/v1/validate' } }).allow).toBe(true);
  });

  it('synth refuses a policy naming an issuer the deployed config lacks', () => {
    const config = loadConfig('config/tvm.yaml') as TvmConfig;
    const stray = { id: 'stray', file: 'policies/stray.cedar', text: '@id("stray")\npermit (principal, action, resource) when { principal.issuer == "gitlab" };' };
    const { problems } = forDeployment({ ...config, cedar: [...config.cedar, stray] });
    expect(problems).toEqual([{ file: 'policies/stray.cedar', path: '@id("stray")', message: expect.stringContaining("'gitlab'") }]);
  });
});
