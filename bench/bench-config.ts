/**
 * The example config for the bench, copied to a temp folder with the per-principal vend rate
 * lifted (the bench drives principals far past what one workload should do: a 429 is not what it
 * measures), its Cedar policies and local S3 seeds beside it. Answers the folder and its tvm.yaml.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';

export function writeBenchConfig(prefix: string): { dir: string; configPath: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const example = parse(readFileSync('config/tvm.yaml', 'utf8'));
  example.leases = { ...example.leases, ratePerPrincipal: { vends: 1_000_000, windowSeconds: 60 } };
  writeFileSync(join(dir, 'tvm.yaml'), stringify(example));
  cpSync('config/policies', join(dir, 'policies'), { recursive: true });
  cpSync('config/local-s3', join(dir, 'local-s3'), { recursive: true });
  return { dir, configPath: join(dir, 'tvm.yaml') };
}
