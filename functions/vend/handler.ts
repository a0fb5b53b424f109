/**
 * `POST /v1/vend` and `GET /v1/credentials/{grant}`: parse → vendCredentials → answer.
 * One audit event per request, filled in on every path.
 */
import { vendCredentials, type VendResult } from '../core/vend-credentials.js';
import { authenticate } from '../shared/authenticate.js';
import { inEnvelope } from '../shared/envelope.js';
import { json, jsonBody, sourceIp, type HttpEvent, type HttpResult } from '../shared/http.js';
import { containerRequestFromQuery, parseRequest, vendBodySchema } from '../shared/request.js';
import type { VendRuntime } from '../shared/runtime.js';

export function createVendHandler(rt: VendRuntime) {
  return function vendHandler(event: HttpEvent): Promise<HttpResult> {
    const container = event.routeKey === 'GET /v1/credentials/{grant}';
    return inEnvelope(
      rt,
      event,
      'vend',
      async (record) => {
        const who = await authenticate(rt, event, container);
        Object.assign(record, { principal: who.principal, issuer: who.issuer.name, tokenSha256: who.tokenSha256 });
        let request;
        if (container) {
          request = { grant: event.pathParameters?.grant ?? '', ...containerRequestFromQuery(event.queryStringParameters) };
        } else {
          const body = parseRequest(vendBodySchema, jsonBody(event));
          request = { grant: body.grant, durationSeconds: body.durationSeconds, context: body.context ?? {} };
        }
        const result = await vendCredentials(
          { config: rt.config, policy: rt.policy, leases: rt.leases, credentials: rt.credentials, clock: rt.clock, ids: rt.ids, rates: rt.rates },
          { who, ...request, sourceIp: sourceIp(event) },
          record,
        );
        return container ? containerAnswer(result) : vendAnswer(result);
      },
      {
        finish(record, status) {
          record.outcome = status === 200 ? 'issued' : status === 401 || status === 403 || status === 409 ? 'denied' : status < 500 ? 'refused' : 'failed';
          if (status === 200) rt.metrics.count('VendIssued');
          else if (status === 403) rt.metrics.count('VendDenied');
          else if (status >= 500) rt.metrics.count('VendErrors');
        },
      },
    );
  };
}

function vendAnswer({ lease, credentials: c }: VendResult): HttpResult {
  return json(200, {
    leaseId: lease.leaseId,
    grant: lease.grant,
    roleArn: lease.roleArn,
    issuedAt: lease.issuedAt,
    expiresAt: lease.expiresAt,
    credentials: { AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, SessionToken: c.sessionToken, Expiration: c.expiration },
  });
}

/** The container-credentials format the AWS SDKs and CLI read (`Token`, not `SessionToken`). */
function containerAnswer({ lease, credentials: c }: VendResult): HttpResult {
  return json(200, {
    AccessKeyId: c.accessKeyId,
    SecretAccessKey: c.secretAccessKey,
    Token: c.sessionToken,
    Expiration: c.expiration,
    AccountId: lease.roleArn.split(':')[4],
  });
}
