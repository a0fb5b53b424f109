/**
 * The config as the CDK bundles it: tvm.yaml's content plus the Cedar policies inline, as JSON.
 * A Lambda loads only this form, so no function bundle carries the YAML parser. Synth wrote it
 * from a config that passed the full check (Cedar validation included); loading it checks the
 * schema and the cross-field rules again and freezes it.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';
import { configSchema, formatPath, type ConfigProblem, type TvmConfig } from '../core/config.js';
import { checkConfig } from '../core/check-config.js';

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(problems.map((p) => `${p.file}: ${p.path}: ${p.message}`).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** zod issues as config problems of `file`. */
export function schemaProblems(file: string, raw: unknown): { data?: Omit<TvmConfig, 'cedar' | 'source'>; problems: ConfigProblem[] } {
  const parsed = configSchema.safeParse(raw);
  if (parsed.success) return { data: parsed.data, problems: [] };
  return {
    problems: parsed.error.issues.map((issue) => ({
      file,
      path: formatPath(issue.path),
      message:
        issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}` : issue.message,
    })),
  };
}

/**
 * The JSON synth bundles: no absolute path of the build machine (the source file and each Cedar
 * file are named relative to the config's folder), so the asset hash depends on the config's
 * content only, not on the checkout folder.
 */
export function compiledConfigJson(config: TvmConfig): string {
  const dir = isAbsolute(config.source) ? dirname(config.source) : undefined;
  const rel = (file: string) => (dir && isAbsolute(file) ? relative(dir, file) : file);
  return JSON.stringify({ ...config, source: basename(config.source), cedar: config.cedar.map((p) => ({ ...p, file: rel(p.file) })) });
}

/**
 * Loads the compiled JSON config at `path`.
 * @throws ConfigError naming every problem.
 * @example const config = loadCompiledConfig('/var/task/tvm-config.json');
 */
export function loadCompiledConfig(path: string): Readonly<TvmConfig> {
  const file = resolve(path);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError([{ file, path: '(file)', message: `cannot be read as JSON: ${(e as Error).message}` }]);
  }
  const { cedar, source: _source, ...raw } = parsed;
  const { data, problems } = schemaProblems(file, raw);
  if (!data) throw new ConfigError(problems);
  const config: TvmConfig = { ...data, cedar: (cedar ?? []) as TvmConfig['cedar'], source: file };
  problems.push(...checkConfig(config));
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(config);
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
