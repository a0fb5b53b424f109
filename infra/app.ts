/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy`. Builds the stack from the same tvm.yaml the
 * local stack runs (`$TVM_CONFIG`, else config/tvm.yaml) and checks it with cdk-nag.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadSynthConfig } from './synth-config.js';
import { TvmStack } from './tvm-stack.js';

const app = new App();
const config = loadSynthConfig(process.env.TVM_CONFIG ?? app.node.tryGetContext('tvmConfig') ?? 'config/tvm.yaml');
new TvmStack(app, app.node.tryGetContext('stackName') ?? 'Tvm', {
  config,
  description: 'tvm: token vending machine for AWS workloads',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
