/**
 * What each function is composed of, by type, and the local stack's composition. A Lambda builds
 * only its own parts in its `functions/<name>/lambda.ts`; `createRuntime` builds every part at
 * once for the one process that serves every function (the local stack, tests, the bench).
 */
import type { IdGenerator, PolicyEngine } from '../core/ports.js';
import { createCedarPolicyEngine } from '../adapters/cedar-policy.js';
import { randomIds } from '../adapters/random-ids.js';
import { createBase, leaseParts, tokenParts, type Base, type LeaseParts, type RuntimeSettings, type TokenParts } from './compose.js';
import { iamParts, type IamParts } from './compose-iam.js';
import { stsParts, type StsParts } from './compose-sts.js';

export { systemClock, type RuntimeSettings } from './compose.js';

export interface PolicyParts {
  policy: PolicyEngine;
}

export type VendRuntime = Base & TokenParts & LeaseParts & StsParts & PolicyParts & { ids: IdGenerator };
export type LeasesRuntime = Base & TokenParts & LeaseParts & IamParts & PolicyParts;
export type SweepRuntime = Base & LeaseParts & IamParts;
export type BrokerRuntime = Base & TokenParts & PolicyParts;
export type RotateRuntime = Base;

/** Every part: what the local stack runs all the handlers over. */
export type Runtime = VendRuntime & LeasesRuntime & SweepRuntime & BrokerRuntime & RotateRuntime;

/** Every part at once, for one process that serves every function (never a Lambda). */
export function createRuntime(settings: RuntimeSettings): Runtime {
  const base = createBase(settings);
  return {
    ...base,
    ...tokenParts(base),
    ...leaseParts(base),
    ...stsParts(base),
    ...iamParts(base),
    policy: createCedarPolicyEngine(settings.config),
    ids: randomIds,
  };
}
