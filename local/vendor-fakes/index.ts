/**
 * The vendor fakes of the local stack (one per configured vendor, each on its own loopback
 * port) and the local vendor runtime pieces: the embedded secret store under the data directory,
 * with each vendor's management credential seeded from its fake; the first key is created at the
 * fake by the first rotation run (`seedVendorKeys`).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { TvmConfig } from '../../functions/core/config.js';
import type { RotationOutcome } from '../../functions/core/rotate-vendor-key.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { AWSCURRENT } from '../../functions/core/vendor-ports.js';
import { LocalSecretStore } from '../../functions/adapters/local-secret-store.js';
import type { Runtime } from '../../functions/shared/runtime.js';
import type { VendorRuntimeSettings, VendorSecretIds } from '../../functions/shared/vendor-runtime.js';
import type { VendorFake } from './base.js';
import { DatadogFake } from './datadog.js';
import { HttpFake } from './http.js';
import { OpenAiFake } from './openai.js';

export { DatadogFake } from './datadog.js';
export { OpenAiFake } from './openai.js';
export { HttpFake, ACME_HTTP_CONFIG } from './http.js';
export { fakeAt, type VendorFake } from './base.js';

export interface VendorFakes {
  /** Vendor name → the fake's base URL (http://127.0.0.1:PORT). */
  urls: Record<string, string>;
  fakes: Record<string, VendorFake>;
  close(): Promise<void>;
}

/** Builds (not starts) the fake for one vendor; state kept in `<dataDir>/vendor-fakes/<name>.json` when given. */
export function createVendorFake(vendor: VendorConfig, dataDir?: string): VendorFake {
  const file = dataDir ? join(dataDir, 'vendor-fakes', `${vendor.name}.json`) : undefined;
  if (vendor.kind === 'datadog') return new DatadogFake(vendor.name, file);
  if (vendor.kind === 'openai') return new OpenAiFake(vendor.name, vendor.projectId ?? 'proj_local', file);
  return new HttpFake(vendor.name, file);
}

/**
 * Starts a fake for each vendor, on 127.0.0.1 and a free port.
 * @example const vf = await startVendorFakes(config.vendors, { dataDir: '.tvm/dev' }); const cfg = withFakeUrls(config, vf.urls);
 */
export async function startVendorFakes(vendors: readonly VendorConfig[], opts: { dataDir?: string } = {}): Promise<VendorFakes> {
  const fakes: Record<string, VendorFake> = {};
  const urls: Record<string, string> = {};
  try {
    for (const v of vendors) {
      const fake = createVendorFake(v, opts.dataDir);
      fakes[v.name] = fake;
      urls[v.name] = await fake.start();
    }
  } catch (e) {
    await Promise.all(Object.values(fakes).map((f) => f.close()));
    throw e;
  }
  return {
    urls,
    fakes,
    close: async () => void (await Promise.all(Object.values(fakes).map((f) => f.close()))),
  };
}

/** A copy of the config with each vendor's `baseUrl` pointed at its fake. */
export function withFakeUrls<T extends Pick<TvmConfig, 'vendors'>>(config: T, urls: Record<string, string>): T {
  return { ...config, vendors: config.vendors.map((v) => (urls[v.name] ? { ...v, baseUrl: urls[v.name] } : v)) };
}

/** The local secret ids: names, as Secrets Manager would also accept. */
export function localSecretIds(vendors: readonly VendorConfig[]): Record<string, VendorSecretIds> {
  return Object.fromEntries(vendors.map((v) => [v.name, { key: `tvm/vendors/${v.name}/key`, management: `tvm/vendors/${v.name}/management` }]));
}

/**
 * The vendor settings of the local runtime: the embedded secret store (`<dataDir>/secrets.json`,
 * or memory), with each vendor's management credential put there from its fake when absent.
 */
export async function localVendorSettings(
  vendors: readonly VendorConfig[],
  fakes: VendorFakes,
  opts: { dataDir?: string; keyCacheTtlMs?: number } = {},
): Promise<VendorRuntimeSettings> {
  const secrets = new LocalSecretStore(opts.dataDir ? join(opts.dataDir, 'secrets.json') : undefined);
  const secretIds = localSecretIds(vendors);
  for (const v of vendors) {
    const fake = fakes.fakes[v.name];
    if (!fake) continue;
    const id = secretIds[v.name].management;
    const have = await secrets.getValue(id, { stage: AWSCURRENT });
    if (have?.value !== fake.managementSecret()) await secrets.putValue(id, randomUUID(), fake.managementSecret(), [AWSCURRENT]);
  }
  return { secrets, secretIds, keyCacheTtlMs: opts.keyCacheTtlMs };
}

/**
 * Runs the scheduled rotation once: at first start there is no key, so each vendor's first key
 * is created at its fake; later starts settle anything a crash left and rotate what is due.
 */
export async function seedVendorKeys(rt: Runtime): Promise<RotationOutcome[]> {
  const { createRotateHandler } = await import('../../functions/rotate/handler.js');
  const out = (await createRotateHandler(rt)({ source: 'tvm.local', 'detail-type': 'Scheduled Event' })) as { results: RotationOutcome[] };
  return out.results;
}
