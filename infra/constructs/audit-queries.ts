/**
 * The audit trail in AWS is the functions' structured logs. This construct saves the CloudWatch
 * Logs Insights queries an on-call engineer needs ("who held what, when", "denials by reason",
 * "revocations and fallbacks", "rotations"), and lets the admin events route (the leases
 * function) query the same log groups: the env var naming them and the permission, set together.
 */
import { Fn, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { CfnQueryDefinition } from 'aws-cdk-lib/aws-logs';
import { Validations } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { ENV } from '../../functions/shared/env.js';

export interface AuditQueriesProps {
  /** The functions whose logs hold the audit events. */
  functions: Record<string, LambdaFunction>;
  /** The function serving `GET /v1/admin/events`. */
  reader: LambdaFunction;
}

/** The saved queries, by name: audit lines only (`audit = 1`), newest first. */
export const AUDIT_QUERIES: Record<string, string> = {
  'who held what, when':
    'fields @timestamp, event, principal, leaseId, grant, requestId, tokenSha256 | filter audit = 1 and (event = "vend" and status = 200 or event like /^lease_(revoked|expired|settled)$/) | sort @timestamp desc | limit 1000',
  'denials by reason':
    'fields @timestamp, reason | filter audit = 1 and ispresent(reason) and status >= 400 and status < 500 | stats count(*) as denials by reason, event | sort denials desc',
  'revocations and fallbacks':
    'fields @timestamp, event, leaseId, principal, grant, roleArn, by, reason, fallback, revoked, failed.0.roleArn | filter audit = 1 and event in ["lease_revoked", "bulk_revoke", "revocation_fallback", "revoke_failed", "revocation_fallback_dropped"] | sort @timestamp desc | limit 1000',
  rotations:
    'fields @timestamp, event, vendor, keyId, reason, by | filter audit = 1 and event like /^vendor_/ | sort @timestamp desc | limit 1000',
};

export class AuditQueries extends Construct {
  constructor(scope: Construct, id: string, props: AuditQueriesProps) {
    super(scope, id);
    const groups = Object.values(props.functions).map((fn) => fn.logGroup);
    const stack = Stack.of(this);
    for (const [name, queryString] of Object.entries(AUDIT_QUERIES)) {
      new CfnQueryDefinition(this, name.replace(/[^a-z]+/gi, '-'), {
        name: `tvm/${stack.stackName}/${name}`,
        queryString,
        logGroupNames: groups.map((g) => g.logGroupName),
      });
    }
    props.reader.addEnvironment(ENV.auditLogGroups, Fn.join(',', groups.map((g) => g.logGroupName)));
    const policy = new PolicyStatement({ sid: 'AuditQueryStart', actions: ['logs:StartQuery'], resources: groups.map((g) => g.logGroupArn) });
    props.reader.addToRolePolicy(policy);
    // GetQueryResults and StopQuery take no resource (a query id is not an ARN).
    props.reader.addToRolePolicy(new PolicyStatement({ sid: 'AuditQueryRead', actions: ['logs:GetQueryResults', 'logs:StopQuery'], resources: ['*'] }));
    if (props.reader.role) {
      Validations.of(props.reader.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: 'logs:GetQueryResults and logs:StopQuery support no resource-level permission: they name a query id, not an ARN.',
      });
    }
  }
}
