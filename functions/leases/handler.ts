/**
 * Lease routes: a principal reads its own lease; admins list and inspect leases with their events.
 * Another principal's lease answers 404, not 403: its existence is not revealed.
 */
import { NotFound } from '../core/errors.js';
import { LEASE_ID } from '../core/lease.js';
import type { LeaseStatus } from '../core/ports.js';
import { authenticate } from '../shared/authenticate.js';
import { inEnvelope } from '../shared/envelope.js';
import { adminIdentity, json, jsonBody, sourceIp, type HttpEvent, type HttpResult } from '../shared/http.js';
import { z } from 'zod';
import { PRINCIPAL_FORM, revokeLeases, type RevokeSelector } from '../core/revoke-bulk.js';
import { revokeOwnLease, type RevokeDeps } from '../core/revoke-lease.js';
import { parseRequest, plainText } from '../shared/request.js';
import type { LeasesRuntime } from '../shared/runtime.js';
import { reasonInWords } from '../core/explain.js';

const STATUSES: LeaseStatus[] = ['pending', 'active', 'revoked', 'expired', 'failed'];

/** An ISO-8601 time, normalized to the form leases and events store (`toISOString`). */
export const isoTime = z
  .string()
  .max(64)
  .refine((v) => !Number.isNaN(Date.parse(v)), 'not an ISO-8601 time')
  .transform((v) => new Date(Date.parse(v)).toISOString());

/** A page size in a query string: 1 to 1000, default 100. */
export const limitParam = z.coerce.number().int().min(1).max(1000).default(100);

/** `GET /v1/admin/leases` query: unknown parameters are refused, so a typo never widens a listing. */
export const leaseListSchema = z
  .object({
    principal: z.string().min(1).max(512).optional(),
    grant: z.string().min(1).max(128).optional(),
    issuer: z.string().min(1).max(128).optional(),
    task: z.string().min(1).max(256).optional(),
    status: z.enum(STATUSES as [LeaseStatus, ...LeaseStatus[]]).optional(),
    since: isoTime.optional(),
    until: isoTime.optional(),
    limit: limitParam,
    next: z.string().min(1).max(2048).optional(),
  })
  .strict();

/** `GET /v1/admin/events` query. */
export const eventListSchema = z
  .object({
    since: isoTime.optional(),
    until: isoTime.optional(),
    principal: z.string().min(1).max(512).optional(),
    lease: z.string().regex(LEASE_ID, 'not a lease id').optional(),
    grant: z.string().min(1).max(128).optional(),
    type: z.string().min(1).max(64).regex(/^[a-z_]+$/, 'an event type').optional(),
    requestId: z.string().min(1).max(128).optional(),
    limit: limitParam,
    next: z.string().min(1).max(2048).optional(),
  })
  .strict();

export function leaseIdParam(event: HttpEvent): string {
  const id = event.pathParameters?.id ?? '';
  if (!LEASE_ID.test(id)) throw new NotFound('bad_lease_id');
  return id;
}

const reasonField = z.string().trim().pipe(plainText(256));

/** `POST /v1/leases/{id}/revoke`: the body is optional. */
export const selfRevokeSchema = z.object({ reason: reasonField.optional() }).strict();

/** `POST /v1/admin/revoke`: exactly one selector and a reason. */
export const adminRevokeSchema = z
  .object({
    leaseId: z.string().regex(LEASE_ID, 'not a lease id').optional(),
    principal: z.string().min(1).max(512).regex(PRINCIPAL_FORM, 'issuer|sub').optional(),
    grant: z.string().min(1).max(128).optional(),
    issuer: z.string().min(1).max(128).optional(),
    task: z.string().min(1).max(256).optional(),
    all: z.literal(true).optional(),
    reason: reasonField,
    dryRun: z.boolean().optional(),
  })
  .strict()
  .refine((b) => SELECTORS.filter((k) => b[k] !== undefined).length === 1, {
    message: 'exactly one of leaseId, principal, grant, issuer, task, all',
    path: ['selector'],
  });

const SELECTORS = ['leaseId', 'principal', 'grant', 'issuer', 'task', 'all'] as const;

export function selectorOf(body: z.infer<typeof adminRevokeSchema>): RevokeSelector {
  for (const k of SELECTORS) if (k !== 'all' && body[k] !== undefined) return { [k]: body[k] } as RevokeSelector;
  return { all: true };
}

export function revokeDeps(rt: LeasesRuntime): RevokeDeps {
  return { leases: rt.leases, revoker: rt.revoker, clock: rt.clock, audit: rt.audit, metrics: rt.metrics };
}

export type RouteHandler = (rt: LeasesRuntime, event: HttpEvent, record: Record<string, unknown>) => Promise<HttpResult>;

export const routes: Record<string, RouteHandler> = {
  async 'GET /v1/leases/{id}'(rt, event, record) {
    const who = await authenticate(rt, event);
    Object.assign(record, { principal: who.principal, tokenSha256: who.tokenSha256 });
    const lease = await rt.leases.get(leaseIdParam(event));
    if (!lease || lease.principal !== who.principal) throw new NotFound('lease_not_found');
    record.leaseId = lease.leaseId;
    return json(200, lease);
  },
  async 'POST /v1/leases/{id}/revoke'(rt, event, record) {
    const who = await authenticate(rt, event);
    Object.assign(record, { principal: who.principal, tokenSha256: who.tokenSha256 });
    const leaseId = leaseIdParam(event);
    const body = event.body ? parseRequest(selfRevokeSchema, jsonBody(event)) : {};
    const { lease, changed } = await revokeOwnLease({ ...revokeDeps(rt), policy: rt.policy }, { who, leaseId, reason: body.reason, sourceIp: sourceIp(event) }, record);
    record.changed = changed;
    return json(200, { leaseId: lease.leaseId, status: lease.status, ...(lease.revokedAt ? { revokedAt: lease.revokedAt } : {}) });
  },
  async 'POST /v1/admin/revoke'(rt, event, record) {
    const admin = adminIdentity(event);
    record.admin = admin;
    const body = parseRequest(adminRevokeSchema, jsonBody(event));
    const selector = selectorOf(body);
    Object.assign(record, { selector, reason: body.reason });
    const out = await revokeLeases({ ...revokeDeps(rt), config: rt.config }, selector, { by: admin, reason: body.reason }, { dryRun: body.dryRun });
    Object.assign(record, out);
    return json(200, out);
  },
  async 'GET /v1/admin/leases'(rt, event, record) {
    record.admin = adminIdentity(event);
    const q = parseRequest(leaseListSchema, event.queryStringParameters ?? {});
    const page = await rt.leases.page(q);
    return json(200, page.next ? { leases: page.leases, next: page.next } : { leases: page.leases });
  },
  async 'GET /v1/admin/events'(rt, event, record) {
    record.admin = adminIdentity(event);
    const { lease, ...q } = parseRequest(eventListSchema, event.queryStringParameters ?? {});
    const source = rt.settings.events;
    if (!source) throw new NotFound('events_not_configured');
    const page = await source.query({ ...q, leaseId: lease });
    const events = page.events.map((e) => (e.reason ? { ...e, explanation: reasonInWords(e) } : e));
    return json(200, page.next ? { events, next: page.next } : { events });
  },
  async 'GET /v1/admin/leases/{id}'(rt, event, record) {
    record.admin = adminIdentity(event);
    const lease = await rt.leases.get(leaseIdParam(event));
    if (!lease) throw new NotFound('lease_not_found');
    return json(200, lease);
  },
};

export function createLeasesHandler(rt: LeasesRuntime) {
  return function leasesHandler(event: HttpEvent): Promise<HttpResult> {
    return inEnvelope(rt, event, 'leases', (record) => {
      const route = routes[event.routeKey];
      if (!route) throw new NotFound('no_route');
      return route(rt, event, record);
    });
  };
}
