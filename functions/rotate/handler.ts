/**
 * The rotate function. Three kinds of event:
 * - a schedule (EventBridge Scheduler, or the local stack's timer): every vendor is settled,
 *   rotated when due and has its retired keys revoked after the overlap; one vendor failing
 *   never blocks another;
 * - a Secrets Manager rotation step `{SecretId, ClientRequestToken, Step}` (this function is also
 *   each key secret's rotation Lambda);
 * - the admin routes `GET /v1/admin/vendors` and `POST /v1/admin/vendors/{name}/rotate`.
 */
import { z } from 'zod';
import { InvalidRequest, NotFound, TvmError } from '../core/errors.js';
import {
  failureReason,
  rotateIfDue,
  rotateVendorKey,
  runRotationStep,
  vendorStatus,
  type RotationOutcome,
  type RotationStep,
} from '../core/rotate-vendor-key.js';
import { adminIdentity, errorResult, header, json, rawBody, requestIdOf, type HttpEvent, type HttpResult } from '../shared/http.js';
import { parseRequest } from '../shared/request.js';
import type { RotateRuntime } from '../shared/runtime.js';
import { vendorRuntime } from '../shared/vendor-runtime.js';

export interface SecretsManagerRotationEvent {
  SecretId: string;
  ClientRequestToken: string;
  Step: RotationStep;
}

export interface ScheduledRunResult {
  results: (RotationOutcome | { vendor: string; outcome: 'failed' | 'busy'; reason: string })[];
}

const STEPS: RotationStep[] = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'];

const rotateBodySchema = z
  .object({
    reason: z.string().min(1).max(256).regex(/^[^\p{Cc}]*$/u, 'no control characters').optional(),
    revokePrevious: z.boolean().optional(),
  })
  .strict();

function isRotationEvent(e: unknown): e is SecretsManagerRotationEvent {
  const x = e as Record<string, unknown>;
  return !!x && typeof x.SecretId === 'string' && typeof x.ClientRequestToken === 'string' && typeof x.Step === 'string';
}

function isHttpEvent(e: unknown): e is HttpEvent {
  const x = e as Record<string, unknown>;
  return !!x && typeof x.routeKey === 'string' && !!(x.requestContext as Record<string, unknown> | undefined)?.http;
}

export function createRotateHandler(rt: RotateRuntime) {
  /** Every vendor, one at a time; failures are recorded and counted, never thrown. */
  async function scheduled(): Promise<ScheduledRunResult> {
    const vr = vendorRuntime(rt);
    const results: ScheduledRunResult['results'] = [];
    for (const vendor of vr.vendors) {
      const target = vr.target(vendor.name);
      if (!target) {
        rt.metrics.count('RotationFailures');
        rt.audit.event('vendor_rotation_failed', { vendor: vendor.name, reason: 'vendor_secret_not_configured' });
        results.push({ vendor: vendor.name, outcome: 'failed', reason: 'vendor_secret_not_configured' });
        continue;
      }
      try {
        results.push(await rotateIfDue(vr.rotateDeps(vendor), target));
      } catch (e) {
        const reason = failureReason(e);
        if (reason === 'rotation_in_progress') {
          results.push({ vendor: vendor.name, outcome: 'busy', reason });
          continue;
        }
        rt.metrics.count('RotationFailures');
        if (!(e instanceof TvmError)) rt.logger.warn('rotation failed', { vendor: vendor.name, reason, error: (e as Error)?.message });
        results.push({ vendor: vendor.name, outcome: 'failed', reason });
      }
    }
    rt.audit.event('vendor_schedule', { results: results.map((r) => ({ vendor: r.vendor, outcome: r.outcome, ...('reason' in r ? { reason: r.reason } : {}) })) });
    return { results };
  }

  async function secretsManagerStep(event: SecretsManagerRotationEvent): Promise<void> {
    const vr = vendorRuntime(rt);
    if (!STEPS.includes(event.Step)) throw new Error(`unknown rotation step ${String(event.Step).slice(0, 40)}`);
    const vendor = vr.vendorBySecret(event.SecretId);
    if (!vendor) throw new Error('the secret is not a vendor key secret of this tvm');
    try {
      await runRotationStep(vr.rotateDeps(vendor), { vendor, secretId: event.SecretId }, event.Step, event.ClientRequestToken);
    } catch (e) {
      rt.metrics.count('RotationFailures');
      throw e; // Secrets Manager marks the rotation failed and retries the step.
    }
  }

  async function http(event: HttpEvent): Promise<HttpResult> {
    const requestId = requestIdOf(event);
    const record: Record<string, unknown> = { requestId, route: event.routeKey };
    let status = 500;
    try {
      const admin = adminIdentity(event);
      record.admin = admin;
      const vr = vendorRuntime(rt);
      if (event.routeKey === 'GET /v1/admin/vendors') {
        const vendors = await Promise.all(vr.vendors.map((v) => vendorStatus(vr, v)));
        status = 200;
        return json(200, { vendors });
      }
      if (event.routeKey === 'POST /v1/admin/vendors/{name}/rotate') {
        const name = event.pathParameters?.name ?? '';
        record.vendor = name;
        const target = vr.target(name);
        if (!target) throw new NotFound('unknown_vendor', { vendor: name });
        const buf = rawBody(event, 16 * 1024);
        let body: z.infer<typeof rotateBodySchema> = {};
        if (buf.length) {
          if (!/^application\/json\b/i.test(header(event, 'content-type') ?? '')) throw new InvalidRequest('content_type', undefined, 'Content-Type must be application/json.');
          let parsed: unknown;
          try {
            parsed = JSON.parse(buf.toString('utf8'));
          } catch {
            throw new InvalidRequest('malformed_json', undefined, 'The body is not valid JSON.');
          }
          body = parseRequest(rotateBodySchema, parsed);
        }
        Object.assign(record, { reason: body.reason, revokePrevious: !!body.revokePrevious });
        let outcome: RotationOutcome;
        try {
          outcome = await rotateVendorKey(vr.rotateDeps(target.vendor), target, { reason: body.reason ?? 'admin', by: admin, revokePrevious: body.revokePrevious });
        } catch (e) {
          if (failureReason(e) !== 'rotation_in_progress') rt.metrics.count('RotationFailures');
          throw e;
        }
        status = 200;
        record.keyId = outcome.keyId;
        return json(200, outcome);
      }
      throw new NotFound('unknown_route', { route: event.routeKey });
    } catch (e) {
      const answer = errorResult(e, requestId);
      status = answer.statusCode;
      record.reason = failureReason(e);
      if (e instanceof TvmError && e.detail) record.detail = e.detail;
      if (!(e instanceof TvmError)) rt.logger.error('unexpected error', { requestId, error: (e as Error)?.message });
      return answer;
    } finally {
      rt.audit.event('vendor_admin', { ...record, status });
    }
  }

  return async function rotateHandler(event: unknown): Promise<unknown> {
    try {
      if (isRotationEvent(event)) return await secretsManagerStep(event);
      if (isHttpEvent(event)) return await http(event);
      return await scheduled();
    } finally {
      rt.metrics.flush();
    }
  };
}
