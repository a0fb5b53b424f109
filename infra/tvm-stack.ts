/**
 * The stack `npx cdk deploy` creates: the TokenVendingMachine construct and its outputs.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { TvmConfig } from '../functions/core/config.js';
import { TokenVendingMachine, type TokenVendingMachineProps } from './constructs/token-vending-machine.js';

export interface TvmStackProps extends StackProps, Omit<TokenVendingMachineProps, 'config'> {
  readonly config: TvmConfig;
}

export class TvmStack extends Stack {
  readonly tvm: TokenVendingMachine;

  constructor(scope: Construct, id: string, props: TvmStackProps) {
    super(scope, id, props);
    this.tvm = new TokenVendingMachine(this, 'Tvm', props);

    new CfnOutput(this, 'ApiUrl', { value: this.tvm.url, description: 'tvm endpoint: set TVM_ENDPOINT to this' });
    new CfnOutput(this, 'VendRoleArn', {
      value: this.tvm.vendRole.roleArn,
      description: 'The only principal grant roles trust (VendableRole vendRole)',
    });
    new CfnOutput(this, 'LeasesRoleArn', { value: this.tvm.roles.leases.roleArn, description: 'RevokerRole revokingRoleArns (with SweepRoleArn)' });
    new CfnOutput(this, 'SweepRoleArn', { value: this.tvm.roles.sweep.roleArn, description: 'RevokerRole revokingRoleArns (with LeasesRoleArn)' });
    new CfnOutput(this, 'TableName', { value: this.tvm.table.tableName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.tvm.alarmTopic.topicArn, description: 'Subscribe to get alarms' });
    new CfnOutput(this, 'DashboardName', { value: this.tvm.dashboard.dashboardName });
    for (const [name, s] of Object.entries(this.tvm.vendorSecrets)) {
      const id = name.replace(/[^a-zA-Z0-9]/g, '');
      new CfnOutput(this, `Vendor${id}ManagementSecretArn`, {
        value: s.management.secretArn,
        description: `Put the ${name} management credential here`,
      });
      new CfnOutput(this, `Vendor${id}KeySecretArn`, { value: s.key.secretArn, description: `The ${name} API key tvm rotates` });
    }
  }
}
