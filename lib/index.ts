/**
 * segflow's public API. Everything a Node app may import is exported here, by name.
 */
// jobs
export { aggregate } from './aggregate.js';
export { generate } from './generate.js';
// the pool an app can keep between jobs
export { SegflowPool } from './pool.js';
// errors
export { SegflowError, ERROR_CODES } from './errors.js';

export type { AggregateOptions, AggregateSummary, CommonOptions, InputSummary, ProgressEvent, SegmentSummary, Stage } from './types.js';
export type { ErrorCode } from './errors.js';
export type { PoolOptions } from './pool.js';
export type { GenerateOptions, GenerateSummary } from './generate.js';
