/**
 * segflow's public API: everything a Node app may import, by name. Internal modules are not part
 * of it.
 */

// --- public API: the jobs
export { aggregate } from './aggregate.js';
export { segment } from './segment.js';
export { kmeans, fitSegments, nameSegments, assignWithModel } from './kmeans-job.js';
export { fitKMeans, assignNearest, silhouetteScore } from './kmeans.js';
export { fitScaler, applyScaler, invertScaler } from './scale.js';
export { stream, exportState } from './stream/index.js';
export { generate } from './generate.js';
export { benchWorkers } from './bench.js';
export { renderReport, writeReport } from './report.js';

// --- public API: the pool an app keeps between jobs, and errors
export { SegflowPool } from './pool.js';
export { SegflowError, ERROR_CODES } from './errors.js';

export type { AggregateOptions, AggregateSummary, CommonOptions, InputSummary, ProgressEvent, SegmentSummary, Stage } from './types.js';
export type { SegmentOptions, SegmentModel } from './segment.js';
export type { FitOptions, KMeansJobOptions, KMeansJobResult, KMeansModel, KRangeEntry, FitSegmentsOptions, SegmentsFit } from './kmeans-job.js';
export type { StreamHandle, StreamSummary, StreamExportSummary, ChangeEvent, StreamExportOptions, StreamMetrics, StreamOptions } from './stream/index.js';
export type { ErrorCode } from './errors.js';
export type { PoolOptions } from './pool.js';
export type { GenerateOptions, GenerateSummary } from './generate.js';
export type { BenchOptions, BenchResult, BenchRow } from './bench.js';
export type { ScaleMethod, Scaler } from './scale.js';
export type { KMeansOptions, KMeansResult } from './kmeans.js';
export type { ReportData } from './report.js';
