/**
 * The `vendors` section of tvm.yaml: brokered third-party keys.
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

const httpRequest = z
  .object({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    path: z.string().startsWith('/'),
    body: z.unknown().optional(),
  })
  .strict();

export const vendorSchema = z
  .object({
    name: z.string().regex(NAME, 'must match [a-z0-9-]+'),
    kind: z.enum(['datadog', 'openai', 'http']),
    baseUrl: z.string().url(),
    rotation: z.object({ every: duration, overlap: duration }).strict(),
    broker: z.object({ allow: z.array(allowEntry).min(1) }).strict(),
    /** openai: the project whose service accounts carry the keys. */
    projectId: z.string().optional(),
    /** http: how to create, test and revoke keys at a vendor tvm has no adapter for. */
    http: z
      .object({
        keyHeader: z.string(),
        keyPrefix: z.string().optional(),
        managementHeader: z.string(),
        managementPrefix: z.string().optional(),
        create: httpRequest.extend({ keyPath: z.string(), idPath: z.string() }).strict(),
        test: httpRequest,
        revoke: httpRequest,
      })
      .strict()
      .optional(),
  })
  .strict();

export type VendorConfig = z.infer<typeof vendorSchema>;
