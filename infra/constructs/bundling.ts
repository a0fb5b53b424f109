/**
 * How each function is bundled: esbuild (no Docker), CommonJS with the SDK bundled, and the
 * synth-validated config (and Cedar's .wasm, for the functions that decide) copied beside it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type BundlingOptions, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import type { TvmConfig } from '../../functions/core/config.js';
import { compiledConfigJson } from '../../functions/shared/compiled-config.js';

/** Where the bundled config sits in each function: relative to the task root, where Lambda unpacks the asset. */
export const BUNDLED_CONFIG_PATH = 'tvm-config.json';

export interface BundleFiles {
  /** The compiled config JSON (`writeBundledConfig`). */
  readonly configFile: string;
  /** cedar-wasm's .wasm, copied only when `withCedar`. */
  readonly wasmFile: string;
}

/** The bundling of one function; `withCedar` copies the .wasm cedar-wasm loads from beside the bundle. */
export function bundlingOptions(files: BundleFiles, withCedar: boolean): BundlingOptions {
  return {
    format: OutputFormat.CJS,
    target: 'node24',
    minify: true,
    // The map ships beside the bundle without the sources' text, and Node does not load it at
    // start (no --enable-source-maps: it parses the whole map on every cold start); an
    // unexpected error's logged stack is mapped lazily (functions/shared/mapped-stack.ts).
    sourceMap: true,
    sourcesContent: false,
    bundleAwsSDK: true,
    externalModules: [],
    // The SDK's ES modules, so esbuild keeps only the commands a function sends (its
    // CommonJS build carries every command of every client it imports).
    mainFields: ['module', 'main'],
    commandHooks: {
      beforeBundling: () => [],
      beforeInstall: () => [],
      // The config travels with the code, so what was validated at synth is what runs;
      // cedar-wasm loads its .wasm from beside the CommonJS bundle.
      afterBundling: (_inputDir: string, outputDir: string) => [
        `cp ${shellQuote(files.configFile)} ${shellQuote(join(outputDir, BUNDLED_CONFIG_PATH))}`,
        ...(withCedar ? [`cp ${shellQuote(files.wasmFile)} ${shellQuote(join(outputDir, 'cedar_wasm_bg.wasm'))}`] : []),
      ],
    },
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Writes the config JSON the functions load, named by its content so synths stay stable. */
export function writeBundledConfig(config: TvmConfig): string {
  const json = compiledConfigJson(config);
  const dir = join(tmpdir(), 'tvm-cdk');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `tvm-config-${createHash('sha256').update(json).digest('hex').slice(0, 16)}.json`);
  if (!existsSync(file)) {
    // Write then rename, so a concurrent synth never copies a half-written file.
    const partial = `${file}.${process.pid}.tmp`;
    writeFileSync(partial, json);
    renameSync(partial, file);
  }
  return file;
}

export function cedarWasmPath(): string {
  const require = createRequire(import.meta.url);
  const file = join(dirname(require.resolve('@cedar-policy/cedar-wasm/nodejs')), 'cedar_wasm_bg.wasm');
  if (!existsSync(file)) throw new Error(`cedar-wasm's ${file} is missing; run npm ci`);
  return file;
}
