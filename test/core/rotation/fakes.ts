/**
 * In-memory fakes of the rotation's ports, for pure tests of `core/rotation`: a vendor that keeps
 * keys by id and name (and can fail any call), a VendorStateStore held to the same contract as
 * DynamoVendorStateStore (`vendor-state-store.test.ts` runs it), Secrets Manager's label rules
 * from the local store (`LocalSecretStore` in memory), a clock that moves only when told.
 */
import { LocalSecretStore } from '../../../functions/adapters/local-secret-store.js';
import { KeyRejected, LockLost, UpstreamUnavailable } from '../../../functions/core/errors.js';
import type { RotateDeps, RotateTarget } from '../../../functions/core/rotate-vendor-key.js';
import type { VendorConfig } from '../../../functions/core/vendor-config.js';
import {
  AWSCURRENT,
  type ListedKey,
  type VendorKey,
  type VendorKeys,
  type VendorState,
  type VendorStateStore,
} from '../../../functions/core/vendor-ports.js';

export const T0 = Date.parse('2030-01-01T00:00:00Z');
export const LOCK_TTL = 60_000;
export const SECRET_ID = 'tvm/vendors/acme/key';
export const HOUR = 3600_000;
export const MINUTE = 60_000;

/** The lock rules of DynamoVendorStateStore's conditions, over a Map. */
export class MemoryVendorStateStore implements VendorStateStore {
  readonly states = new Map<string, VendorState>();
  readonly locks = new Map<string, { owner: string; expiresAtMs: number }>();

  async get(vendor: string): Promise<VendorState | undefined> {
    const s = this.states.get(vendor);
    return s && structuredClone(s);
  }

  async acquire(vendor: string, owner: string, nowMs: number, expiresAtMs: number): Promise<boolean> {
    const l = this.locks.get(vendor);
    if (l && l.owner !== owner && !(l.expiresAtMs < nowMs)) return false;
    this.locks.set(vendor, { owner, expiresAtMs });
    return true;
  }

  async save(state: VendorState, owner: string, nowMs: number): Promise<void> {
    const l = this.locks.get(state.vendor);
    if (!l || l.owner !== owner || !(l.expiresAtMs > nowMs)) throw new LockLost(state.vendor);
    this.states.set(state.vendor, structuredClone(state));
  }

  async release(vendor: string, owner: string): Promise<void> {
    if (this.locks.get(vendor)?.owner === owner) this.locks.delete(vendor);
  }
}

type Op = 'create' | 'test' | 'revoke' | 'list';

/** A vendor's key management: keys by id, named, live until revoked. */
export class FakeVendorKeys implements VendorKeys {
  readonly keys = new Map<string, { name: string; key: string; live: boolean }>();
  /** Every call, in order (`create tvm-…`, `test k1`, `revoke k1`, `list tvm-…`). */
  readonly calls: string[] = [];
  /** Key ids that passed a test at the vendor. */
  readonly passed = new Set<string>();
  /** The next call of each operation throws this (once each entry). */
  private readonly faults: Partial<Record<Op, unknown[]>> = {};
  private seq = 0;
  list?: (prefix: string) => Promise<ListedKey[]>;

  constructor(listable = true) {
    if (listable) {
      this.list = async (prefix: string) => {
        this.calls.push(`list ${prefix}`);
        this.fault('list');
        return [...this.keys].filter(([, k]) => k.live && k.name.startsWith(prefix)).map(([keyId, k]) => ({ keyId, name: k.name }));
      };
    }
  }

  /** Makes the next `op` call throw `error`. */
  fail(op: Op, error: unknown = new UpstreamUnavailable('vendor_500')): void {
    (this.faults[op] ??= []).push(error);
  }

  /** Disarms every fault not yet met. */
  clearFaults(): void {
    for (const op of Object.keys(this.faults) as Op[]) delete this.faults[op];
  }

  private fault(op: Op): void {
    const f = this.faults[op]?.shift();
    if (f !== undefined) throw f;
  }

  async create(name: string): Promise<VendorKey> {
    this.calls.push(`create ${name}`);
    this.fault('create');
    const keyId = `k${++this.seq}`;
    const key = `secret-${keyId}-${name}`;
    this.keys.set(keyId, { name, key, live: true });
    return { keyId, key };
  }

  async test(key: VendorKey): Promise<void> {
    this.calls.push(`test ${key.keyId}`);
    this.fault('test');
    const k = this.keys.get(key.keyId);
    if (!k || !k.live || k.key !== key.key) throw new KeyRejected(401);
    this.passed.add(key.keyId);
  }

  async revoke(keyId: string): Promise<void> {
    this.calls.push(`revoke ${keyId}`);
    this.fault('revoke');
    const k = this.keys.get(keyId);
    if (k) k.live = false;
  }

  keyHeaders(key: string): Record<string, string> {
    return { 'x-api-key': key };
  }

  live(): string[] {
    return [...this.keys].filter(([, k]) => k.live).map(([id]) => id);
  }

  /** Adds a key the vendor holds (as a crashed run would leave it). */
  plant(name: string): string {
    const keyId = `k${++this.seq}`;
    this.keys.set(keyId, { name, key: `secret-${keyId}`, live: true });
    return keyId;
  }
}

export const vendorConfig = (over: Partial<VendorConfig> = {}): VendorConfig => ({
  name: 'acme',
  kind: 'http',
  baseUrl: 'https://vendor.example',
  rotation: { every: '24h', overlap: '15m' },
  broker: { allow: ['GET /x'], timeoutSeconds: 5, keyCacheSeconds: 30 },
  ...over,
});

export interface Rig {
  vendor: VendorConfig;
  target: RotateTarget;
  secrets: LocalSecretStore;
  keys: FakeVendorKeys;
  state: MemoryVendorStateStore;
  clock: { t: number; now(): number };
  audit: { type: string; fields: Record<string, unknown> }[];
  configured: { value: boolean };
  tokens: string[];
  deps(over?: Partial<RotateDeps>): RotateDeps;
  /** The stored state (what the next run reads). */
  st(): Promise<VendorState>;
  versions(): Promise<Record<string, string[]>>;
  current(): Promise<{ versionId: string; key: VendorKey } | undefined>;
}

export function rig(opts: { listable?: boolean; vendor?: Partial<VendorConfig> } = {}): Rig {
  const vendor = vendorConfig(opts.vendor);
  const secrets = new LocalSecretStore();
  const keys = new FakeVendorKeys(opts.listable ?? true);
  const state = new MemoryVendorStateStore();
  const clock = { t: T0, now: () => clock.t };
  const audit: Rig['audit'] = [];
  const configured = { value: true };
  const tokens: string[] = [];
  let owners = 0;
  const r: Rig = {
    vendor,
    target: { vendor, secretId: SECRET_ID },
    secrets,
    keys,
    state,
    clock,
    audit,
    configured,
    tokens,
    deps: (over = {}) => ({
      secrets,
      keys,
      state,
      clock,
      audit: { event: (type, fields) => void audit.push({ type, fields }) },
      newToken: () => {
        const t = `tok-${tokens.length + 1}`;
        tokens.push(t);
        return t;
      },
      owner: `owner-${++owners}`,
      lockTtlMs: LOCK_TTL,
      configured: async () => configured.value,
      ...over,
    }),
    st: async () => (await state.get(vendor.name))!,
    versions: () => secrets.versions(SECRET_ID),
    current: async () => {
      const v = await secrets.getValue(SECRET_ID, { stage: AWSCURRENT });
      return v && { versionId: v.versionId, key: JSON.parse(v.value) as VendorKey };
    },
  };
  return r;
}
