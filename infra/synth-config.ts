/**
 * Loads tvm.yaml for synth. A bad config stops `cdk synth` with the loader's own message (the
 * one `tvm policy check` prints), not a stack trace.
 */
import type { TvmConfig } from '../functions/core/config.js';
import { loadConfig } from '../functions/shared/load-config.js';

export function loadSynthConfig(path: string): TvmConfig {
  try {
    return loadConfig(path);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
