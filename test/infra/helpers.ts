/**
 * Builds the tvm stack for the infra tests: the fixture config, stand-in handlers, bundling
 * skipped, cdk-nag AwsSolutions on (so `Template.fromStack` throws on any unacknowledged finding).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { TvmConfig } from '../../functions/core/config.js';
import { loadConfig } from '../../functions/shared/load-config.js';
import { TvmStack, type TvmStackProps } from '../../infra/tvm-stack.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const FIXTURE_CONFIG = join(FIXTURES, 'tvm.yaml');
export const STUB_FUNCTIONS = join(FIXTURES, 'functions');

export function fixtureConfig(): TvmConfig {
  return loadConfig(FIXTURE_CONFIG) as TvmConfig;
}

export function buildStack(overrides: Partial<TvmStackProps> = {}, opts: { bundle?: boolean; outdir?: string } = {}) {
  const app = new App({
    outdir: opts.outdir,
    context: opts.bundle ? {} : { 'aws:cdk:bundling-stacks': [] },
  });
  const stack = new TvmStack(app, 'Tvm', {
    config: fixtureConfig(),
    functionsDir: STUB_FUNCTIONS,
    ...overrides,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

export function synthTemplate(overrides: Partial<TvmStackProps> = {}) {
  const { stack } = buildStack(overrides);
  return { stack, template: Template.fromStack(stack) };
}

export type Statement = { Sid?: string; Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

export function actionsOf(statements: Statement[]): string[] {
  return [...new Set(statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])))].sort();
}

/** The statements of every AWS::IAM::Policy attached to the role with this logical id. */
export function statementsOfRole(template: Template, roleLogicalId: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  const out: Statement[] = [];
  for (const p of Object.values(policies)) {
    const roles = (p.Properties.Roles ?? []) as { Ref: string }[];
    if (roles.some((r) => r.Ref === roleLogicalId)) out.push(...(p.Properties.PolicyDocument.Statement as Statement[]));
  }
  return out;
}
