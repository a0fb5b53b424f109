/**
 * Loads tvm.yaml for synth. A bad config stops `cdk synth` with the loader's own message (the
 * one `tvm policy check` prints), not a stack trace.
 */
import { forDeployment, type TvmConfig } from '../functions/core/config.js';
import { ConfigError, loadConfig } from '../functions/shared/load-config.js';

/** The validated config minus what only `tvm dev` uses (its own issuer, the `local` section). */
export function loadSynthConfig(path: string): TvmConfig {
  try {
    const { config, problems } = forDeployment(loadConfig(path));
    if (problems.length) throw new ConfigError(problems);
    return config;
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
