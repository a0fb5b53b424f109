/**
 * The core stays pure: no AWS SDK, no HTTP client, no environment, no wall clock. Checked on the
 * syntax tree (TypeScript's parser), so comments and strings never trip it; a self-test proves
 * the checker sees each kind of violation.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const CORE = join(dirname(fileURLToPath(import.meta.url)), '../../functions/core');
const FORBIDDEN_MODULE = /^(@aws-sdk\/|@smithy\/|undici$|undici\/|(node:)?https?$|(node:)?https?\/)/;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : /\.(ts|mts|cts|js|mjs)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Every violation in one source text, as `line: what`. */
function violations(fileName: string, text: string): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const at = (n: ts.Node, what: string) => out.push(`${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}: ${what}`);
  const checkModule = (n: ts.Node, spec: ts.Expression | undefined) => {
    if (spec && ts.isStringLiteralLike(spec) && FORBIDDEN_MODULE.test(spec.text)) at(n, `imports ${spec.text}`);
  };
  const isProcess = (e: ts.Expression): boolean =>
    (ts.isIdentifier(e) && e.text === 'process') ||
    (ts.isPropertyAccessExpression(e) && e.name.text === 'process' && ts.isIdentifier(e.expression) && ['globalThis', 'global'].includes(e.expression.text));
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) checkModule(n, n.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference)) checkModule(n, n.moduleReference.expression);
    else if (ts.isCallExpression(n)) {
      if (n.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(n.expression) && n.expression.text === 'require')) checkModule(n, n.arguments[0]);
      const callee = n.expression;
      if (ts.isPropertyAccessExpression(callee) && callee.name.text === 'now' && ts.isIdentifier(callee.expression) && callee.expression.text === 'Date') {
        at(n, 'calls Date.now()');
      }
    } else if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'Date' && !n.arguments?.length) {
      at(n, 'calls new Date() without arguments');
    } else if (ts.isPropertyAccessExpression(n) && n.name.text === 'env' && isProcess(n.expression)) {
      at(n, 'reads process.env');
    } else if (ts.isElementAccessExpression(n) && isProcess(n.expression) && ts.isStringLiteralLike(n.argumentExpression) && n.argumentExpression.text === 'env') {
      at(n, 'reads process.env');
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      checkModule(n, n.argument.literal);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

describe('functions/core boundary', () => {
  const files = filesUnder(CORE);

  it('has files to check', () => {
    expect(files.length).toBeGreaterThan(5);
  });

  it.each(files.map((f) => [relative(CORE, f), f]))('%s imports no AWS SDK or HTTP client, reads no env, asks no wall clock', (_name, file) => {
    expect(violations(file, readFileSync(file, 'utf8'))).toEqual([]);
  });
});

describe('the boundary checker itself', () => {
  it.each([
    ["import { STSClient } from '@aws-sdk/client-sts';", 'imports @aws-sdk/client-sts'],
    ["import type { HttpRequest } from '@smithy/types';", 'imports @smithy/types'],
    ["import { request } from 'node:https';", 'imports node:https'],
    ["import http from 'node:http';", 'imports node:http'],
    ["import * as http from 'http';", 'imports http'],
    ["import { fetch } from 'undici';", 'imports undici'],
    ["export { x } from '@aws-sdk/lib-dynamodb';", 'imports @aws-sdk/lib-dynamodb'],
    ["const m = await import('@aws-sdk/client-iam');", 'imports @aws-sdk/client-iam'],
    ["const m = require('node:http');", 'imports node:http'],
    ["type T = import('@aws-sdk/client-sts').STSClient;", 'imports @aws-sdk/client-sts'],
    ['const t = process.env.TABLE;', 'reads process.env'],
    ["const t = process['env'];", 'reads process.env'],
    ['const { TABLE } = globalThis.process.env;', 'reads process.env'],
    ['const n = Date.now();', 'calls Date.now()'],
    ['const d = new Date();', 'calls new Date() without arguments'],
    ['const d = new Date;', 'calls new Date() without arguments'],
  ])('catches %s', (source, what) => {
    expect(violations('x.ts', source)).toEqual([`1: ${what}`]);
  });

  it.each([
    ["import { z } from 'zod';"],
    ["import { createHash } from 'node:crypto';"],
    ["import type { Clock } from './ports.js';"],
    ['const d = new Date(clock.now());'],
    ["const d = new Date('2027-01-01T00:00:00Z');"],
    ['const n = deps.clock.now();'],
    ['// Date.now() and process.env in a comment'],
    ["const s = 'new Date() and process.env and @aws-sdk/client-sts in a string';"],
    ['const e = config.env;'],
  ])('allows %s', (source) => {
    expect(violations('x.ts', source)).toEqual([]);
  });
});
