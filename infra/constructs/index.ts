/** The construct library: tvm in your own CDK app, and roles it may vend. */
export * from './token-vending-machine.js';
export * from './vendable-role.js';
export * from './revoker-role.js';
