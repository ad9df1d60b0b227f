/**
 * The stream's public surface (re-exported by lib/index.ts): `stream` keeps the per-user state
 * of a segment output current from a source; `exportState` writes it as an aggregate output.
 */
export { stream } from './stream.js';
export { exportState } from './export.js';
export { parseRecluster } from './options.js';

export type { StreamHandle, StreamSummary } from './stream.js';
export type { StreamExportSummary } from './export.js';
export type { ChangeEvent, StreamExportOptions, StreamMetrics, StreamOptions, Recluster } from './options.js';
