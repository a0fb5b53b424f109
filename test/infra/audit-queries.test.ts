/**
 * The stack saves the audit trail's Logs Insights queries over every function's log group, and
 * the admin events route can query them: the leases function has the groups in its environment
 * and may start queries on exactly those groups.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { AUDIT_QUERIES } from '../../infra/constructs/audit-queries.js';
import { ENV } from '../../functions/shared/env.js';
import { statementsOfRole, synthTemplate } from './helpers.js';

const { template } = synthTemplate();

describe('audit queries', () => {
  it('saves the four queries, each over all five function log groups', () => {
    const defs = Object.values(template.findResources('AWS::Logs::QueryDefinition'));
    const names = defs.map((d) => JSON.stringify(d.Properties.Name));
    for (const q of ['who held what, when', 'denials by reason', 'revocations and fallbacks', 'rotations']) expect(names.some((n) => n.includes(q))).toBe(true);
    expect(defs).toHaveLength(Object.keys(AUDIT_QUERIES).length);
    for (const d of defs) {
      expect(d.Properties.LogGroupNames).toHaveLength(5);
      expect(d.Properties.QueryString).toMatch(/filter audit = 1/);
    }
  });

  it('the leases function names the log groups and may start queries on them only', () => {
    const fns = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { [ENV.auditLogGroups]: Match.anyValue() } } } });
    expect(Object.keys(fns)).toHaveLength(1);
    const [fn] = Object.values(fns);
    const roleId = (fn.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
    expect(roleId).toMatch(/LeasesRole/);
    const start = statementsOfRole(template, roleId).find((s) => s.Sid === 'AuditQueryStart')!;
    expect(start.Action).toBe('logs:StartQuery');
    expect(start.Resource).toHaveLength(5);
    expect(JSON.stringify(start.Resource)).not.toContain('"*"');
  });

  it('routes GET /v1/admin/events to the leases function behind IAM auth', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'GET /v1/admin/events', AuthorizationType: 'AWS_IAM' });
  });
});
