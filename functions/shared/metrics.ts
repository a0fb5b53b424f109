/**
 * Counters behind the alarms (namespace `tvm`, EMF through Powertools in Lambda). The local
 * stack keeps them in memory.
 */
import { Metrics as PowertoolsMetrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export type MetricName =
  | 'VendIssued'
  | 'VendDenied'
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
  return {
    count: (name, value = 1) => m.addMetric(name, MetricUnit.Count, value),
    flush: () => m.publishStoredMetrics(),
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
