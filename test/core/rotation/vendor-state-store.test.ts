/** The rotation tests' MemoryVendorStateStore keeps the same contract DynamoVendorStateStore is held to. */
import { describe } from 'vitest';
import { vendorStateStoreContract } from '../../adapters/vendor-state-contract.js';
import { MemoryVendorStateStore } from './fakes.js';

describe('MemoryVendorStateStore (fake of VendorStateStore)', () => {
  vendorStateStoreContract(() => new MemoryVendorStateStore());
});
