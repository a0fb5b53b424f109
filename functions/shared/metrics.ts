/**
 * Counters behind the alarms (namespace `tvm`, EMF through Powertools in Lambda). The local
 * stack keeps them in memory.
 */
import { Metrics as PowertoolsMetrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export type MetricName =
  | 'VendIssued'
  | 'VendDenied'
  /** A 401 on any route: a token that did not verify (the denial-spike alarm counts these). */
  | 'TokenRejected'
  | 'VendErrors'
  | 'RevocationFallback'
  | 'SweepErrors'
  | 'SweepSettled'
  | 'RotationFailures'
  | 'BrokerErrors';

export interface Metrics {
  count(name: MetricName, value?: number): void;
  /** Writes what was counted (Lambda: one EMF line per invocation). */
  flush(): void;
}

export function createMetrics(): Metrics {
  const m = new PowertoolsMetrics({ namespace: 'tvm', serviceName: 'tvm' });
  let pending = 0;
  return {
    count: (name, value = 1) => {
      m.addMetric(name, MetricUnit.Count, value);
      pending++;
    },
    // Powertools warns "No application metrics to publish" on an empty flush: a request that
    // counted nothing writes nothing.
    flush: () => {
      if (pending === 0) return;
      pending = 0;
      m.publishStoredMetrics();
    },
  };
}

export function memoryMetrics(): Metrics & { counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  return {
    counts,
    count: (name, value = 1) => void (counts[name] = (counts[name] ?? 0) + value),
    flush: () => undefined,
  };
}
