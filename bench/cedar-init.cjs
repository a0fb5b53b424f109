// Where Cedar's one-time cost goes at a cold start (docs/performance.md, "Cold start"): reading and
// compiling cedar-wasm's module, requiring its glue, then the first preparse and the first
// decision, each timed once in a fresh process. Run with V8 flags to compare, e.g.
//   taskset -c 0 node bench/cedar-init.cjs
//   taskset -c 0 node --liftoff-only bench/cedar-init.cjs
//   taskset -c 0 node --no-wasm-lazy-compilation bench/cedar-init.cjs
const { readFileSync } = require('node:fs');
const { join, dirname } = require('node:path');
const ms = (a, b) => Number((b - a).toFixed(1));
const t0 = performance.now();
const glue = require.resolve('@cedar-policy/cedar-wasm/nodejs');
const bytes = readFileSync(join(dirname(glue), 'cedar_wasm_bg.wasm'));
const t1 = performance.now();
new WebAssembly.Module(bytes);
const t2 = performance.now();
const cedar = require(glue);
const t3 = performance.now();
const policies = { p1: 'permit(principal, action == Tvm::Action::"vend", resource) when { principal.claims.team == "analytics" };' };
const request = (set) => ({
  principal: { type: 'Tvm::Workload', id: 'x' }, action: { type: 'Tvm::Action', id: 'vend' }, resource: { type: 'Tvm::Grant', id: 'g' }, context: {},
  preparsedPolicySetId: set, entities: [{ uid: { type: 'Tvm::Workload', id: 'x' }, attrs: { claims: { team: 'analytics' } }, parents: [] }],
});
const times = [t3];
for (const set of ['first', 'second']) {
  cedar.preparsePolicySet(set, { staticPolicies: policies });
  times.push(performance.now());
  if (cedar.statefulIsAuthorized(request(set)).type !== 'success') throw new Error('cedar-init: the decision failed');
  times.push(performance.now());
}
console.log(JSON.stringify({
  flags: process.execArgv.join(' '), read_ms: ms(t0, t1), compile_ms: ms(t1, t2), require_glue_ms: ms(t2, t3),
  first_preparse_ms: ms(times[0], times[1]), first_decision_ms: ms(times[1], times[2]), second_preparse_ms: ms(times[2], times[3]), second_decision_ms: ms(times[3], times[4]),
}));
