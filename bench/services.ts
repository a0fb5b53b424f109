/**
 * The bench's AWS, in a process of its own: the embedded DynamoDB (dynalite, tvm's table and the
 * sweep's) and the STS/IAM emulator, configured as the local stack configures them.
 *
 * AWS's services do not run on the caller's CPU. In the bench's own process the emulators' work
 * was added to every call tvm makes (a vend makes four, the floor two), so the ratio measured the
 * emulators as much as tvm. Here they run apart, pinned to the other core where there is one
 * (bench/run.ts), and the floor and the vend both reach them over loopback HTTP.
 *
 * Protocol: the parent writes one JSON line on stdin, `{ configPath, credentials }` (the local
 * stack's caller credentials: loopback only, never printed); this process answers one JSON line on
 * stdout with the endpoints, then runs until its stdin closes.
 */
import { createInterface } from 'node:readline';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { loadConfig } from '../functions/shared/load-config.js';
import { ensureTable, startDynalite } from '../local/dynamo.js';
import { emulatorAccount, TABLE } from '../local/stack.js';
import { startStsIamEmulator } from '../local/sts-iam-emulator.js';
import { SWEEP_TABLE } from './sweep.js';

export interface BenchServices {
  dynamodb: string;
  sts: string;
  iam: string;
}

const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const input = JSON.parse(((await lines.next()).value as string | undefined) ?? 'null') as {
  configPath: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
};
const config = loadConfig(input.configPath);
const dynamo = await startDynalite({});
const admin = new DynamoDBClient({ region: 'us-east-1', endpoint: dynamo.endpoint, credentials: input.credentials });
await ensureTable(admin, TABLE);
await ensureTable(admin, SWEEP_TABLE);
admin.destroy();
const emulator = await startStsIamEmulator({ port: 0, ...emulatorAccount(config), callerCredentials: input.credentials });
const services: BenchServices = { dynamodb: dynamo.endpoint, sts: emulator.url, iam: emulator.url };
process.stdout.write(JSON.stringify(services) + '\n');
// The parent's end (or its death) closes stdin: then this process goes too, leaving nothing behind.
rl.on('close', () => process.exit(0));
