/**
 * Issue 10 item 9: `tvm dev` died with SIGTRAP ("# Fatal error in , line 0 # unreachable code",
 * in Deoptimizer::DoComputeBuiltinContinuation) after a few hundred vends on Node 20.20. The cause
 * is V8's: a lazy deopt of an optimised function while a JS->Wasm call that TurboFan inlined, and
 * whose Wasm signature returns externref (as every cedar-wasm export does), is on the stack.
 * Here that shape is made deterministic in a child process (natives syntax forces the optimisation
 * and the deopt): a Wasm export (externref) -> externref calls back into JS, which deoptimises its
 * optimised caller. Without tvm's Cedar adapter loaded it kills Node 20; with it loaded (it turns
 * off the inlining of JS->Wasm calls) the same code survives.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const ADAPTER = pathToFileURL(fileURLToPath(new URL('../../functions/adapters/cedar-policy.ts', import.meta.url))).href;

// (module (import "m" "f" (func (param externref) (result externref)))
//         (func (export "g") (param externref) (result externref) local.get 0 call 0))
const WASM = [
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x01, 0x6f, 0x01, 0x6f, 0x02, 0x07, 0x01, 0x01, 0x6d, 0x01, 0x66, 0x00,
  0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x05, 0x01, 0x01, 0x67, 0x00, 0x01, 0x0a, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x10, 0x00, 0x0b,
];

// The natives-syntax part runs through new Function: V8 parses it, no transpiler sees it.
const REPRO = `
const state = { deopt: false };
const run = new Function('g', 'state', \`
  function caller(o) { return g(o); }
  state.f = () => { if (state.deopt) %DeoptimizeFunction(caller); };
  %PrepareFunctionForOptimization(caller);
  caller({}); caller({});
  %OptimizeFunctionOnNextCall(caller);
  caller({});
  state.deopt = true;
  caller({});
\`);
const f = (x) => (state.f(), x);
const g = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(${JSON.stringify(WASM)})), { m: { f } }).exports.g;
run(g, state);
console.log('survived');
`;

function repro(loadAdapter: boolean) {
  const script = `${loadAdapter ? `await import(${JSON.stringify(ADAPTER)});\n` : ''}${REPRO}`;
  return spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
}

const major = Number(process.versions.node.split('.')[0]);

describe('a lazy deopt across an inlined JS->Wasm call returning externref', () => {
  // The control: the V8 fault itself, on the Node line it was seen on. If a later Node 20 release
  // fixes V8, this fails, and the flag in the adapter can be reconsidered.
  it.runIf(major === 20)('kills Node 20 with SIGTRAP when tvm’s Cedar adapter is not loaded', () => {
    const r = repro(false);
    expect(r.signal, r.stderr.slice(-2000)).toBe('SIGTRAP');
    expect(r.stderr).toContain('unreachable code');
    expect(r.stdout).not.toContain('survived');
  }, 60_000);

  it('is survived once the Cedar adapter is loaded (JS->Wasm calls are no longer inlined)', () => {
    const r = repro(true);
    expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(-2000) }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(r.stdout.trim()).toBe('survived');
  }, 60_000);
});
