/**
 * The rotate function. Three kinds of event:
 * - a schedule (EventBridge Scheduler, or the local stack's timer): `runScheduledRotations`;
 * - a Secrets Manager rotation step `{SecretId, ClientRequestToken, Step}` (this function is also
 *   each key secret's rotation Lambda): `runRotationStep`;
 * - the admin routes `GET /v1/admin/vendors` and `POST /v1/admin/vendors/{name}/rotate`, in the
 *   shared request envelope.
 * The lock of each rotation lasts as long as this invocation can still run (Lambda's remaining time).
 */
import { z } from 'zod';
import { InvalidRequest, NotFound } from '../core/errors.js';
import {
  failureReason,
  ROTATION_STEPS,
  rotateVendorKey,
  runRotationStep,
  runScheduledRotations,
  vendorStatus,
  type RotationStep,
  type ScheduledResult,
} from '../core/rotate-vendor-key.js';
import { inEnvelope } from '../shared/envelope.js';
import { adminIdentity, header, json, rawBody, type HttpEvent, type HttpResult } from '../shared/http.js';
import { parseRequest } from '../shared/request.js';
import type { RotateRuntime } from '../shared/runtime.js';
import { rotationLockTtlMs, SECRETS_MANAGER_CALL_MAX_MS, VENDOR_CALL_MAX_MS, vendorRuntime } from '../shared/vendor-runtime.js';

/**
 * How long `POST /v1/admin/vendors/{name}/rotate` works before it answers: API Gateway cuts an
 * HTTP API integration at 30 s, and a rotation makes several vendor calls of up to 10 s each. No
 * call starts that could end past this budget; what is left (`complete: false`, `remaining`) the
 * next scheduled run does. The same budget as the admin sweep's.
 */
export const ADMIN_ROTATE_BUDGET_MS = 20_000;

export interface SecretsManagerRotationEvent {
  SecretId: string;
  ClientRequestToken: string;
  Step: RotationStep;
}

export interface ScheduledRunResult {
  results: ScheduledResult[];
}

/** What Lambda passes beside the event (absent locally). */
export interface InvocationContext {
  getRemainingTimeInMillis(): number;
}

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

function rotateBody(event: HttpEvent): z.infer<typeof rotateBodySchema> {
  const buf = rawBody(event, 16 * 1024);
  if (!buf.length) return {};
  if (!/^application\/json\b/i.test(header(event, 'content-type') ?? '')) throw new InvalidRequest('content_type', undefined, 'Content-Type must be application/json.');
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new InvalidRequest('malformed_json', undefined, 'The body is not valid JSON.');
  }
  return parseRequest(rotateBodySchema, parsed);
}

export function createRotateHandler(rt: RotateRuntime) {
  const vr = vendorRuntime(rt);
  const lockTtl = (context?: InvocationContext) => ({ lockTtlMs: context ? rotationLockTtlMs(context.getRemainingTimeInMillis()) : undefined });

  async function scheduled(context?: InvocationContext): Promise<ScheduledRunResult> {
    const results = await runScheduledRotations(vr.vendors, (vendor) => {
      const target = vr.target(vendor.name);
      return target && { deps: vr.rotateDeps(vendor, lockTtl(context)), target };
    });
    for (const r of results) if (r.outcome === 'failed') rt.metrics.count('RotationFailures');
    rt.audit.event('vendor_schedule', { results: results.map((r) => ({ vendor: r.vendor, outcome: r.outcome, ...('reason' in r ? { reason: r.reason } : {}) })) });
    return { results };
  }

  async function secretsManagerStep(event: SecretsManagerRotationEvent, context?: InvocationContext): Promise<void> {
    if (!ROTATION_STEPS.includes(event.Step)) throw new InvalidRequest('unknown_rotation_step', { step: String(event.Step).slice(0, 40) });
    const vendor = vr.vendorBySecret(event.SecretId);
    if (!vendor) throw new NotFound('not_a_vendor_key_secret');
    try {
      await runRotationStep(vr.rotateDeps(vendor, lockTtl(context)), { vendor, secretId: vr.secretIds[vendor.name].key }, event.Step, event.ClientRequestToken);
    } catch (e) {
      rt.metrics.count('RotationFailures');
      rt.audit.event('vendor_rotation_step_failed', { vendor: vendor.name, step: event.Step, reason: failureReason(e) });
      throw e; // Secrets Manager marks the rotation failed and retries the step.
    }
  }

  function http(event: HttpEvent, context?: InvocationContext): Promise<HttpResult> {
    return inEnvelope(rt, event, 'vendor_admin', async (record) => {
      record.admin = adminIdentity(event);
      if (event.routeKey === 'GET /v1/admin/vendors') {
        return json(200, { vendors: await Promise.all(vr.vendors.map((v) => vendorStatus(vr.rotateDeps(v), v))) });
      }
      if (event.routeKey === 'POST /v1/admin/vendors/{name}/rotate') {
        const name = event.pathParameters?.name ?? '';
        record.vendor = name;
        const target = vr.target(name);
        if (!target) throw new NotFound('unknown_vendor', { vendor: name });
        const body = rotateBody(event);
        Object.assign(record, { rotateReason: body.reason, revokePrevious: !!body.revokePrevious });
        try {
          const deadline = { atMs: rt.clock.now() + ADMIN_ROTATE_BUDGET_MS, vendorCallMs: VENDOR_CALL_MAX_MS, secretsCallMs: SECRETS_MANAGER_CALL_MAX_MS };
          const outcome = await rotateVendorKey({ ...vr.rotateDeps(target.vendor, lockTtl(context)), deadline }, target, {
            reason: body.reason ?? 'admin',
            by: String(record.admin),
            revokePrevious: body.revokePrevious,
          });
          record.keyId = outcome.keyId;
          if (outcome.outcome === 'deferred') Object.assign(record, { complete: false, remaining: outcome.remaining });
          return json(200, { complete: true, ...outcome });
        } catch (e) {
          if (!['rotation_in_progress', 'vendor_not_configured'].includes(failureReason(e))) rt.metrics.count('RotationFailures');
          throw e;
        }
      }
      throw new NotFound('unknown_route', { route: event.routeKey });
    });
  }

  return async function rotateHandler(event: unknown, context?: InvocationContext): Promise<unknown> {
    if (isHttpEvent(event)) return http(event, context);
    try {
      if (isRotationEvent(event)) return await secretsManagerStep(event, context);
      return await scheduled(context);
    } finally {
      rt.metrics.flush();
    }
  };
}

