/**
 * Each vendor's two secrets (the API key tvm rotates, the management credential an operator
 * sets), their Secrets Manager rotation wiring, and `bindVendorSecrets`, which gives a function
 * the secrets map and its permission in one call.
 */
import { Aws, RemovalPolicy, SecretValue, Validations } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { CfnRotationSchedule, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { TvmConfig } from '../../functions/core/config.js';
import { NOT_CONFIGURED } from '../../functions/core/rotation/vendor-key.js';
import { ENV } from '../../functions/shared/env.js';
import { type BindableFunction, keyVia, pascal, roleOf } from './permissions.js';

export interface VendorSecrets {
  /** The vendor API key tvm rotates and the broker adds to calls. */
  readonly key: Secret;
  /** The credential that creates and revokes keys at the vendor; never brokered. */
  readonly management: Secret;
}

/** `read`: the key secrets (the broker). `rotate`: write the keys, read the management credentials. */
export type VendorSecretsAccess = 'read' | 'rotate';

/** `Vendor<Name>Key` and `Vendor<Name>Management` per configured vendor, in `scope`, encrypted with `key`. */
export function createVendorSecrets(scope: Construct, config: TvmConfig, key: IKey): Record<string, VendorSecrets> {
  const out: Record<string, VendorSecrets> = {};
  for (const vendor of config.vendors) {
    const suffix = pascal(vendor.name);
    // Retained with the stack's deletion: the keys they hold stay live at the vendor until
    // someone revokes them, and the management credential was set by hand.
    // Both start as the placeholder tvm reads as "not configured" (never a generated value the
    // code would take for a credential): no rotation until an operator sets the management one.
    const placeholder = SecretValue.unsafePlainText(NOT_CONFIGURED);
    const apiKey = new Secret(scope, `Vendor${suffix}Key`, {
      description: `tvm: ${vendor.name} API key (rotated by tvm, used only through the broker)`,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      secretStringValue: placeholder,
    });
    const management = new Secret(scope, `Vendor${suffix}Management`, {
      description: `tvm: ${vendor.name} management credential (creates and revokes keys; set by an operator)`,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      secretStringValue: placeholder,
    });
    Validations.of(apiKey).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        "tvm rotates the key on its own EventBridge schedule (rotation.every) and is the secret's rotation Lambda; a second Secrets Manager schedule would rotate on a clock of its own (docs/vendors.md).",
    });
    Validations.of(management).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The vendor management credential (Datadog application key, OpenAI admin key) can only be created by a person at the vendor; an operator rotates it. tvm rotates the API key secret.',
    });
    out[vendor.name] = { key: apiKey, management };
  }
  return out;
}

/**
 * Sets `TVM_VENDOR_SECRETS` (vendor → secret ARNs) on `fn` and grants exactly `access` on those
 * secrets and the key through Secrets Manager. The broker never reads a management credential.
 *
 * @example
 * bindVendorSecrets(secrets, key, brokerFunction, 'read');
 */
export function bindVendorSecrets(secrets: Record<string, VendorSecrets>, key: IKey, fn: BindableFunction, access: VendorSecretsAccess): void {
  const role = roleOf(fn);
  fn.addEnvironment(
    ENV.vendorSecrets,
    JSON.stringify(Object.fromEntries(Object.entries(secrets).map(([name, s]) => [name, { key: s.key.secretArn, management: s.management.secretArn }]))),
  );
  const keyArns = Object.values(secrets).map((s) => s.key.secretArn);
  if (keyArns.length === 0) return;
  const managementArns = Object.values(secrets).map((s) => s.management.secretArn);
  const read = ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'];
  if (access === 'read') {
    role.addToPrincipalPolicy(keyVia(key, 'KeyViaSecretsManager', 'secretsmanager', ['kms:Decrypt']));
    role.addToPrincipalPolicy(new PolicyStatement({ sid: 'ReadVendorKeys', actions: read, resources: keyArns }));
    return;
  }
  role.addToPrincipalPolicy(keyVia(key, 'KeyViaSecretsManager', 'secretsmanager', ['kms:Decrypt', 'kms:GenerateDataKey']));
  role.addToPrincipalPolicy(
    new PolicyStatement({
      sid: 'RotateVendorKeys',
      actions: [...read, 'secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'],
      resources: keyArns,
    }),
  );
  role.addToPrincipalPolicy(new PolicyStatement({ sid: 'ReadVendorManagement', actions: read, resources: managementArns }));
}

/**
 * Makes `rotateFn` each key secret's rotation Lambda, so `RotateSecret` ("rotate now") runs the
 * same four steps. No rotation rules: tvm's own schedule is the one clock (docs/vendors.md, "The
 * Secrets Manager schedule").
 */
export function addSecretsManagerRotation(scope: Construct, secrets: Record<string, VendorSecrets>, rotateFn: LambdaFunction): void {
  for (const [vendorName, s] of Object.entries(secrets)) {
    const suffix = pascal(vendorName);
    rotateFn.addPermission(`SecretsManagerRotates${suffix}`, {
      principal: new ServicePrincipal('secretsmanager.amazonaws.com'),
      sourceAccount: Aws.ACCOUNT_ID,
    });
    const rotation = new CfnRotationSchedule(scope, `Vendor${suffix}KeyRotation`, {
      secretId: s.key.secretArn,
      rotationLambdaArn: rotateFn.functionArn,
      // The first key arrives once an operator has set the management credential.
      rotateImmediatelyOnUpdate: false,
    });
    rotation.node.addDependency(rotateFn.permissionsNode.findChild(`SecretsManagerRotates${suffix}`));
  }
}
