/**
 * The commented issuer and Cedar examples in config/examples load as they are: the config
 * validates and every Cedar policy parses and validates against tvm's schema.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { TvmConfig } from '../../functions/core/config.js';
import { validatePolicies } from '../../functions/adapters/cedar-policy.js';
import { loadConfig } from '../../functions/shared/load-config.js';

const EXAMPLES = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'config', 'examples');
const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort();

describe('config examples', () => {
  it('cover GitHub Actions, GitLab, EKS, SPIFFE and AWS outbound identity federation', () => {
    expect(files).toEqual(['aws-outbound.yaml', 'eks.yaml', 'github-actions.yaml', 'gitlab.yaml', 'spiffe.yaml']);
  });

  it.each(files)('%s loads, and its Cedar policies validate', (file) => {
    const config = loadConfig(join(EXAMPLES, file)) as TvmConfig;
    expect(config.cedar.length).toBeGreaterThan(0);
    expect(validatePolicies(config).problems).toEqual([]);
  });

  it('GitHub pins repository_id and job_workflow_ref; GitLab pins project_id', () => {
    const text = (f: string) => (loadConfig(join(EXAMPLES, f)) as TvmConfig).cedar.map((p) => p.text).join('\n');
    expect(text('github-actions.yaml')).toMatch(/claims\.repository_id ==/);
    expect(text('github-actions.yaml')).toMatch(/claims\.job_workflow_ref ==/);
    expect(text('gitlab.yaml')).toMatch(/claims\.project_id ==/);
  });

  it('the validation is real: a broken policy is a problem', () => {
    const config = { cedar: [{ id: 'broken', file: 'x.cedar', text: '@id("broken") permit (principal, action == Tvm::Action::"vend", resource) when { principal.issuer == };' }] };
    expect(validatePolicies(config).problems.length).toBeGreaterThan(0);
  });
});
