/** What synth deploys: the config without `tvm dev`'s own issuer and `local` section. */
import { describe, expect, it } from 'vitest';
import { forDeployment } from '../../functions/core/config.js';
import { loadConfig } from '../../functions/shared/load-config.js';

describe('forDeployment', () => {
  it('drops the dev issuer and the local section, keeping every other issuer, grant and vendor', () => {
    const config = loadConfig('config/tvm.yaml');
    const { config: deployed, problems } = forDeployment(config);
    expect(problems).toEqual([]);
    expect(deployed.issuers.map((i) => i.name)).toEqual(['github']);
    expect('local' in deployed).toBe(false);
    expect(deployed.grants).toEqual(config.grants);
    expect(deployed.vendors).toEqual(config.vendors);
    // The policies that name only the dev issuer could never match once it is gone.
    expect(deployed.cedar.map((p) => p.id)).toEqual(config.cedar.filter((p) => !/principal\.issuer == "dev"/.test(p.text)).map((p) => p.id));
  });

  it('names the problem when only the dev issuer was configured', () => {
    const config = loadConfig('config/tvm.yaml');
    const onlyDev = { ...config, issuers: config.issuers.filter((i) => i.name === 'dev') };
    const { problems } = forDeployment(onlyDev);
    expect(problems.filter((p) => p.path === 'issuers')).toHaveLength(1);
    expect(problems[0].path).toBe('issuers');
  });
});
