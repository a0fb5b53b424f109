/**
 * Validation of the request fields the handlers accept. Unknown fields are refused, so a typo
 * never silently widens or narrows what was asked.
 */
import { z } from 'zod';
import { InvalidRequest } from '../core/errors.js';
import type { RequestContext } from '../core/ports.js';
import { CONTROL_CHARS } from '../core/verify-token.js';

/** Text a person will read (a context value, a reason): no C0/DEL/C1 controls, no bidi controls. */
export const plainText = (max: number) => z.string().min(1).max(max).refine((v) => !CONTROL_CHARS.test(v), 'no control characters');

const contextValue = plainText(256);

export const contextSchema = z
  .object({
    task: contextValue.optional(),
    tool: contextValue.optional(),
    sensitivity: z.enum(['public', 'internal', 'confidential', 'restricted']).optional(),
    environment: contextValue.optional(),
  })
  .strict();

export const vendBodySchema = z
  .object({
    grant: z.string().min(1).max(128),
    durationSeconds: z.number().int().optional(),
    context: contextSchema.optional(),
  })
  .strict();

/** Parses `value` with `schema` or throws a 400 naming the first field at fault. */
export function parseRequest<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.join('.') || 'body';
    throw new InvalidRequest('bad_field', { field, issue: issue.message }, `Invalid field: ${field}.`);
  }
  return r.data;
}

/** Context from query parameters (the container-credentials route has no body). */
export function contextFromQuery(q: Record<string, string | undefined> | undefined): RequestContext {
  const picked: Record<string, string> = {};
  for (const k of ['task', 'tool', 'sensitivity', 'environment']) if (q?.[k] !== undefined) picked[k] = q[k]!;
  return parseRequest(contextSchema, picked);
}

const durationQuery = z
  .string()
  .regex(/^[0-9]{1,6}$/, 'whole seconds')
  .transform(Number)
  .optional();

/**
 * `GET /v1/credentials/{grant}?durationSeconds=N&task=…`: the duration (bounded by the grant, as
 * in the vend body) and the context. SDKs that call tvm directly pass a duration longer than their
 * own refresh window (botocore: 900 s) so that each call is not a new lease.
 */
export function containerRequestFromQuery(q: Record<string, string | undefined> | undefined): { durationSeconds?: number; context: RequestContext } {
  const durationSeconds = parseRequest(z.object({ durationSeconds: durationQuery }), { durationSeconds: q?.durationSeconds }).durationSeconds;
  return { durationSeconds, context: contextFromQuery(q) };
}
