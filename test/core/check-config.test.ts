/**
 * checkConfig, pure: the cross-field problems `tvm policy check` and synth print — each at its
 * path, with the message an operator reads (asserted whole: it is what they act on).
 */
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../functions/core/check-config.js';
import { configSchema, type TvmConfig } from '../../functions/core/config.js';

const ROLE = (account: string, name = 'r') => `arn:aws:iam::${account}:role/${name}`;
const POLICY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] };

function config(over: Record<string, unknown> = {}, cedar: TvmConfig['cedar'] = []): TvmConfig {
  const parsed = configSchema.parse({
    issuers: [{ name: 'dev', issuer: 'http://127.0.0.1/i', audiences: ['tvm'] }],
    grants: [{ name: 'g', roleArn: ROLE('111111111111'), sessionPolicy: POLICY }],
    ...over,
  });
  return { ...parsed, cedar, source: 'tvm.yaml' };
}
const at = (file: string, path: string, message: string) => ({ file, path, message });

describe('checkConfig', () => {
  it('names every use of a duplicated name, in each section', () => {
    const c = config({
      issuers: [
        { name: 'dev', issuer: 'http://127.0.0.1/a', audiences: ['tvm'] },
        { name: 'ci', issuer: 'http://127.0.0.1/b', audiences: ['tvm'] },
        { name: 'dev', issuer: 'http://127.0.0.1/c', audiences: ['tvm'] },
      ],
      grants: [
        { name: 'g', roleArn: ROLE('111111111111'), sessionPolicy: POLICY },
        { name: 'g', roleArn: ROLE('111111111111'), sessionPolicy: POLICY },
      ],
    });
    expect(checkConfig(c)).toEqual([
      at('tvm.yaml', 'issuers[0].name', "'dev' is used more than once"),
      at('tvm.yaml', 'issuers[2].name', "'dev' is used more than once"),
      at('tvm.yaml', 'grants[0].name', "'g' is used more than once"),
      at('tvm.yaml', 'grants[1].name', "'g' is used more than once"),
    ]);
  });

  it('the same issuer URL twice, one with a trailing slash', () => {
    const c = config({
      issuers: [
        { name: 'a', issuer: 'https://x.example/', audiences: ['tvm'] },
        { name: 'b', issuer: 'https://x.example', audiences: ['tvm'] },
        { name: 'c', issuer: 'https://x.example/other', audiences: ['tvm'] },
      ],
    });
    expect(checkConfig(c)).toEqual([
      at('tvm.yaml', 'issuers[0].issuer', 'the same issuer URL is configured twice'),
      at('tvm.yaml', 'issuers[1].issuer', 'the same issuer URL is configured twice'),
    ]);
  });

  it('unknown placeholders in session policy values, keys and arrays, and in session tags, each at its path', () => {
    const sessionPolicy = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: ['s3:GetObject', 's3:${bogus}'], Resource: '*', Condition: { StringEquals: { '${claims.x}-${nope}': '${context.task}' } } },
      ],
    };
    const c = config({ grants: [{ name: 'g', roleArn: ROLE('111111111111'), sessionPolicy, sessionTags: { team: '${claims.team}', who: '${whoami}' } }] });
    expect(checkConfig(c)).toEqual([
      at('tvm.yaml', 'grants[0].sessionPolicy.Statement[0].Action[1]', 'unknown placeholder ${bogus}'),
      at('tvm.yaml', 'grants[0].sessionPolicy.Statement[0].Condition.StringEquals.${claims.x}-${nope}', 'unknown placeholder ${nope}'),
      at('tvm.yaml', 'grants[0].sessionTags.who', 'unknown placeholder ${whoami}'),
    ]);
  });

  it('at most 47 session tags of its own', () => {
    const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, 'v']));
    expect(checkConfig(config({ grants: [{ name: 'g', roleArn: ROLE('111111111111'), sessionPolicy: POLICY, sessionTags: tags(47) }] }))).toEqual([]);
    expect(checkConfig(config({ grants: [{ name: 'g', roleArn: ROLE('111111111111'), sessionPolicy: POLICY, sessionTags: tags(48) }] }))).toEqual([
      at('tvm.yaml', 'grants[0].sessionTags', 'at most 47 tags (STS allows 50 and tvm adds 3)'),
    ]);
  });

  it.each(['tvm:lease', 'TVM:x', 'aws:foo', 'AWS:Bar'])('the reserved tag key %s', (key) => {
    expect(checkConfig(config({ grants: [{ name: 'g', roleArn: ROLE('111111111111'), sessionPolicy: POLICY, sessionTags: { [key]: 'v', 'tvmx:ok': 'v' } }] }))).toEqual([
      at('tvm.yaml', `grants[0].sessionTags.${key}`, 'tag keys starting with tvm: or aws: are reserved'),
    ]);
  });

  it('a Cedar policy id used twice, named in each file', () => {
    const cedar = [
      { id: 'a', file: 'p/one.cedar', text: '' },
      { id: 'b', file: 'p/one.cedar', text: '' },
      { id: 'a', file: 'p/two.cedar', text: '' },
    ];
    expect(checkConfig(config({}, cedar))).toEqual([
      at('p/one.cedar', '@id("a")', 'policy id is used more than once'),
      at('p/two.cedar', '@id("a")', 'policy id is used more than once'),
    ]);
  });
});

describe('checkConfig: accounts', () => {
  const grants = (...accounts: string[]) => accounts.map((a, i) => ({ name: `g${i}`, roleArn: ROLE(a), sessionPolicy: POLICY }));

  it('one account in use, unlisted, is tvm\'s own', () => {
    expect(checkConfig(config({ grants: grants('111111111111', '111111111111') }))).toEqual([]);
  });

  it('two unlisted accounts and no own account named: both grants are refused', () => {
    expect(checkConfig(config({ grants: grants('111111111111', '222222222222') }))).toEqual([
      at('tvm.yaml', 'grants[0].roleArn', "is in account 111111111111, which is neither tvm's own nor listed under accounts (with its revokerRoleArn): its sessions could not be revoked"),
      at('tvm.yaml', 'grants[1].roleArn', "is in account 222222222222, which is neither tvm's own nor listed under accounts (with its revokerRoleArn): its sessions could not be revoked"),
    ]);
  });

  it('with the own account named, a grant elsewhere and unlisted is refused, naming both accounts', () => {
    expect(checkConfig(config({ account: '111111111111', grants: grants('111111111111', '222222222222') }))).toEqual([
      at('tvm.yaml', 'grants[1].roleArn', "is in account 222222222222, which is neither tvm's own (111111111111) nor listed under accounts (with its revokerRoleArn): its sessions could not be revoked"),
    ]);
  });

  it('a listed account is fine; the own one among several unlisted is inferred only when it is the one left', () => {
    const accounts = { '222222222222': { revokerRoleArn: ROLE('222222222222', 'tvm-revoker') } };
    expect(checkConfig(config({ accounts, grants: grants('111111111111', '222222222222') }))).toEqual([]);
    expect(checkConfig(config({ account: '333333333333', accounts, grants: grants('222222222222', '333333333333') }))).toEqual([]);
  });

  it("a revoker role outside its account, and tvm's own account listed", () => {
    const accounts = {
      '222222222222': { revokerRoleArn: ROLE('333333333333', 'tvm-revoker') },
      '111111111111': { revokerRoleArn: ROLE('111111111111', 'tvm-revoker') },
    };
    expect(checkConfig(config({ account: '111111111111', accounts, grants: grants('111111111111') }))).toEqual([
      at('tvm.yaml', 'accounts.222222222222.revokerRoleArn', 'must be a role in account 222222222222'),
      at('tvm.yaml', 'accounts.111111111111', "is tvm's own account (account): list only other accounts"),
    ]);
  });
});
