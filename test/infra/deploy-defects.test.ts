/**
 * Defects found by deploying as a new user would (issue 9): the alarm topic's policy, vendor
 * secrets outliving the stack, the denial-spike alarm seeing token probing, and each template
 * through cfn-lint (an independent linter): no errors, each warning kept acknowledged here.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../functions/shared/load-config.js';
import { forDeployment } from '../../functions/core/config.js';
import { needTool } from '../helpers/tools.js';
import type { TvmStack } from '../../infra/tvm-stack.js';
import { synthTemplate } from './helpers.js';

let stack: TvmStack;
let template: Template;
beforeAll(() => {
  ({ stack, template } = synthTemplate());
});

describe('alarms reach their topic', () => {
  it('the topic policy lets CloudWatch alarms of this account publish, beside the TLS deny', () => {
    const [policy] = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    const statements = policy.Properties.PolicyDocument.Statement as Record<string, any>[];
    expect(statements.some((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false')).toBe(true);
    const allow = statements.find((s) => s.Effect === 'Allow' && s.Principal?.Service === 'cloudwatch.amazonaws.com');
    expect(allow).toBeDefined();
    expect(allow!.Action).toBe('sns:Publish');
    expect(allow!.Condition.StringEquals['aws:SourceAccount']).toEqual({ Ref: 'AWS::AccountId' });
    expect(JSON.stringify(allow!.Condition.ArnLike['aws:SourceArn'])).toMatch(/arn:.*cloudwatch:.*AWS::Region.*AWS::AccountId.*:alarm:\*/);
  });

  it('the denial-spike alarm counts 401s (token probing) as well as policy denials', () => {
    const alarm = Object.entries(template.findResources('AWS::CloudWatch::Alarm')).find(([id]) => id.includes('VendDenialsSpike'))![1];
    const names = JSON.stringify(alarm.Properties.Metrics ?? alarm.Properties.MetricName);
    expect(names).toContain('VendDenied');
    expect(names).toContain('TokenRejected');
  });
});

describe('vendor secrets', () => {
  it('are retained when the stack is deleted (their keys stay live at the vendor)', () => {
    const secrets = Object.values(template.findResources('AWS::SecretsManager::Secret'));
    expect(secrets.length).toBeGreaterThan(0);
    for (const s of secrets) {
      expect(s.DeletionPolicy).toBe('Retain');
      expect(s.UpdateReplacePolicy).toBe('Retain');
    }
  });
});

/** Warnings cfn-lint may report on tvm's templates, each with why it stays. */
const ACKNOWLEDGED: Record<string, string> = {
  W3005:
    "CDK's NodejsFunction adds DependsOn on the function's role and its default policy, so the policy exists before the first invoke; the role half is redundant with the GetAtt on Role, and harmless.",
};

const lintable = needTool('cfn-lint', 'cfn-lint on the synthesized templates');
describe.skipIf(!lintable)('cfn-lint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tvm-cfn-lint-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const templates: Record<string, () => object> = {
    'the test fixture config': () => template.toJSON(),
    'the example config (config/tvm.yaml, as deployed)': () => {
      const { config } = forDeployment(loadConfig('config/tvm.yaml'));
      return synthTemplate({ config }).template.toJSON();
    },
  };

  it.each(Object.keys(templates))('%s: no errors, and only acknowledged warnings', (name) => {
    const file = join(dir, `${name.replace(/\W+/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(templates[name]()));
    const out = spawnSync('cfn-lint', ['--format', 'json', file], { encoding: 'utf8' });
    const findings = JSON.parse(out.stdout || '[]') as { Rule: { Id: string }; Level: string; Message: string }[];
    expect(findings.filter((f) => f.Level === 'Error')).toEqual([]);
    expect(findings.filter((f) => !(f.Rule.Id in ACKNOWLEDGED)).map((f) => `${f.Rule.Id}: ${f.Message}`)).toEqual([]);
  }, 240_000);
});
