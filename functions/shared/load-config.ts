/**
 * Loads tvm.yaml (or the compiled JSON the CDK bundles) once, validates it as a whole and
 * freezes it. Every problem names the file, the path inside it and what is wrong.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseDocument, isMap, isSeq, LineCounter } from 'yaml';
import type { ConfigProblem, TvmConfig } from '../core/config.js';
import { checkConfig } from '../core/check-config.js';
import { validatePolicies } from '../adapters/cedar-policy.js';
import { ConfigError, deepFreeze, loadCompiledConfig, schemaProblems } from './compiled-config.js';

export { ConfigError };

const ID_ANNOTATION = /@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)/g;

/** Splits a Cedar file into its policies, each keyed by its `@id` (required, unique). */
export function splitCedar(file: string, text: string, problems: ConfigProblem[]): { id: string; file: string; text: string }[] {
  const out: { id: string; file: string; text: string }[] = [];
  // A policy ends at a ';' outside strings and comments.
  let start = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '/' && text[i + 1] === '/') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
    } else if (c === ';') {
      push(text.slice(start, i + 1));
      start = i + 1;
    }
  }
  const rest = text.slice(start).replace(/\/\/[^\n]*/g, '').trim();
  if (rest) problems.push({ file, path: `(after policy ${out.length})`, message: 'text after the last policy does not end with ";"' });
  return out;

  function push(policy: string) {
    const body = policy.replace(/^\s*(\/\/[^\n]*\n\s*)*/g, '').trim();
    if (!body) return;
    ID_ANNOTATION.lastIndex = 0;
    const m = ID_ANNOTATION.exec(body);
    const line = text.slice(0, text.indexOf(body)).split('\n').length;
    if (!m) {
      problems.push({ file, path: `line ${line}`, message: 'every policy needs an @id("…") annotation (the id explains decisions)' });
      return;
    }
    out.push({ id: m[1], file, text: body });
  }
}

function readCedar(dir: string, problems: ConfigProblem[]): TvmConfig['cedar'] {
  let files: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    files = readdirSync(dir).filter((f) => f.endsWith('.cedar')).sort();
  } catch {
    problems.push({ file: dir, path: '(policies)', message: 'the Cedar policy folder cannot be read' });
    return [];
  }
  const all: TvmConfig['cedar'] = [];
  for (const f of files) all.push(...splitCedar(join(dir, f), readFileSync(join(dir, f), 'utf8'), problems));
  return all;
}

/**
 * Loads and validates the config at `path`.
 * @throws ConfigError naming every problem.
 * @example const config = loadConfig(process.env.TVM_CONFIG ?? 'config/tvm.yaml');
 */
export function loadConfig(path: string): Readonly<TvmConfig> {
  const file = resolve(path);
  // The compiled form bundled by the CDK (the YAML's content plus the Cedar policies inline).
  if (file.endsWith('.json')) return loadCompiledConfig(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError([{ file, path: '(file)', message: 'cannot be read' }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(doc.errors.map((e) => ({ file, path: `line ${e.linePos?.[0].line ?? '?'}`, message: e.message.split('\n')[0] })));
  }
  if (!isMap(doc.contents) && !isSeq(doc.contents)) {
    throw new ConfigError([{ file, path: '(root)', message: 'must be a YAML mapping' }]);
  }
  const { data, problems } = schemaProblems(file, doc.toJS());
  if (!data) throw new ConfigError(problems);
  const cedar = readCedar(resolve(dirname(file), data.policies), problems);
  const config: TvmConfig = { ...data, cedar, source: file };
  problems.push(...checkConfig(config));
  if (!problems.length) problems.push(...validatePolicies(config).problems);
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(config);
}
