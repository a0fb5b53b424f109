/**
 * Metrics: a request that counted nothing writes nothing (Powertools would log "No application
 * metrics to publish" on every such request), and every 401 is counted, so the denial-spike
 * alarm sees token probing on any route.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidToken } from '../../functions/core/errors.js';
import { inEnvelope } from '../../functions/shared/envelope.js';
import { createAudit, createLogger } from '../../functions/shared/logger.js';
import { createMetrics, memoryMetrics } from '../../functions/shared/metrics.js';
import { httpEvent } from '../helpers/events.js';

function captureOutput() {
  const lines: string[] = [];
  const grab = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(grab as never);
  vi.spyOn(process.stderr, 'write').mockImplementation(grab as never);
  return lines;
}
afterEach(() => vi.restoreAllMocks());

describe('createMetrics (Powertools EMF)', () => {
  it('writes nothing when nothing was counted', () => {
    const lines = captureOutput();
    createMetrics().flush();
    vi.restoreAllMocks();
    expect(lines.join('')).toBe('');
  });

  it('writes one EMF document with what was counted, then nothing more', () => {
    const lines = captureOutput();
    const m = createMetrics();
    m.count('VendIssued');
    m.flush();
    m.flush();
    vi.restoreAllMocks();
    const docs = lines.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(docs).toHaveLength(1);
    expect(docs[0]).toEqual(expect.objectContaining({ VendIssued: 1 }));
  });
});

describe('the request envelope', () => {
  it('counts a 401 as TokenRejected', async () => {
    const metrics = memoryMetrics();
    const logger = createLogger({ sink: () => undefined });
    const rt = { logger, audit: createAudit(logger), metrics, clock: { now: () => 0 } };
    const answer = await inEnvelope(rt, httpEvent('POST /v1/vend'), 'vend', async () => {
      throw new InvalidToken('token_expired');
    });
    expect(answer.statusCode).toBe(401);
    expect(metrics.counts).toEqual({ TokenRejected: 1 });
  });
});
