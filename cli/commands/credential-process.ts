/** `tvm credential-process`: `vend` in the AWS `credential_process` format, for ~/.aws/config. */
import type { Io } from '../lib.js';
import { vend } from './vend.js';

export const run = (args: string[], io: Io) => vend(args, io, 'credential-process');
