/**
 * The `vendors` section of tvm.yaml: brokered third-party keys. Each kind names what it needs:
 * `openai` its project, `http` the requests that create, test, list and revoke keys.
 */
import { z } from 'zod';

export const NAME = /^[a-z0-9-]+$/;

/** `30s`, `15m`, `24h`, `7d` → seconds. */
export function parseDurationSeconds(text: string): number | undefined {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

const duration = z.string().refine((s) => parseDurationSeconds(s) !== undefined && parseDurationSeconds(s)! > 0, {
  message: 'must be a duration like 30s, 15m, 24h or 7d',
});

const allowEntry = z
  .string()
  .regex(/^(GET|HEAD|POST|PUT|PATCH|DELETE|\*) \/\S*$/, 'must be "METHOD /path" (path may end with /* or use * for one segment)');

const headerName = z.string().regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name');
/** A dot path into a JSON answer: `data.attributes.key`, `items.0.id`. */
const jsonPath = z.string().regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'must be a dot path like data.id');

const httpRequest = z
  .object({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    /** May hold `{keyName}` (create) or `{keyId}` (revoke). */
    path: z.string().startsWith('/'),
    /** JSON body; string values may hold `{keyName}`. */
    body: z.unknown().optional(),
  })
  .strict();

/** `http` kind: how to manage keys at a vendor tvm has no adapter for. */
export const httpVendorSchema = z
  .object({
    /** The header that carries the key on brokered and test calls, e.g. `X-Api-Key` or `Authorization`. */
    keyHeader: headerName,
    /** Put before the key in `keyHeader`, e.g. `"Bearer "`. */
    keyPrefix: z.string().optional(),
    /** The header that carries the management credential on create, list and revoke. */
    managementHeader: headerName,
    managementPrefix: z.string().optional(),
    create: httpRequest.extend({ keyPath: jsonPath, idPath: jsonPath }).strict(),
    /** Called with the new key; 2xx means it works, 401/403 that it does not. */
    test: httpRequest,
    /** `{keyId}` in the path; 2xx or 404 means revoked. */
    revoke: httpRequest,
    /** Optional: lists keys so a key created before a crash can be found by name and revoked. */
    list: httpRequest.extend({ itemsPath: jsonPath, idPath: jsonPath, namePath: jsonPath }).strict().optional(),
  })
  .strict();

export const vendorSchema = z
  .object({
    name: z.string().regex(NAME, 'must match [a-z0-9-]+'),
    kind: z.enum(['datadog', 'openai', 'http']),
    baseUrl: z.string().url(),
    rotation: z.object({ every: duration, overlap: duration }).strict(),
    broker: z
      .object({
        allow: z.array(allowEntry).min(1),
        /** Seconds tvm waits for the vendor on a brokered call (API Gateway stops at 30). */
        timeoutSeconds: z.number().int().min(1).max(29).default(25),
        /**
         * Seconds the broker uses a key it read before reading AWSCURRENT again: after a rotation,
         * calls move to the new key within this time (a key the vendor rejects is reloaded at once).
         */
        keyCacheSeconds: z.number().int().min(0).max(300).default(30),
      })
      .strict(),
    /** openai: the project whose service accounts carry the keys. */
    projectId: z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be an OpenAI project id like proj_abc').optional(),
    /** http: how to create, test and revoke keys at a vendor tvm has no adapter for. */
    http: httpVendorSchema.optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.kind === 'openai' && !v.projectId) ctx.addIssue({ code: 'custom', path: ['projectId'], message: 'is required for kind openai' });
    if (v.kind !== 'openai' && v.projectId) ctx.addIssue({ code: 'custom', path: ['projectId'], message: 'is only for kind openai' });
    if (v.kind === 'http' && !v.http) ctx.addIssue({ code: 'custom', path: ['http'], message: 'is required for kind http' });
    if (v.kind !== 'http' && v.http) ctx.addIssue({ code: 'custom', path: ['http'], message: 'is only for kind http' });
    const every = parseDurationSeconds(v.rotation.every);
    const overlap = parseDurationSeconds(v.rotation.overlap);
    if (every !== undefined && overlap !== undefined && overlap >= every) {
      ctx.addIssue({ code: 'custom', path: ['rotation', 'overlap'], message: 'must be shorter than rotation.every' });
    }
  });

export type VendorConfig = z.infer<typeof vendorSchema>;
export type HttpVendorConfig = z.infer<typeof httpVendorSchema>;
