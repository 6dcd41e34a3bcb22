/**
 * @kiln/solver: turns LLB into vertices, computes BuildKit-model cache keys, runs ops on a
 * worker in parallel, and reports progress.
 */
export { SolverError, throwIfCancelled, type SolverErrorCode, type SolverErrorOptions, type SourceLocation } from './errors.js';
export {
  ProgressStream,
  ProgressFanout,
  discardProgress,
  type ProgressEvent,
  type ProgressSink,
  type VertexStartedEvent,
  type VertexCachedEvent,
  type VertexDoneEvent,
  type VertexErrorEvent,
  type VertexLogEvent,
  type VertexStatusEvent,
} from './progress/events.js';
export { formatBytes, formatSeconds, type ProgressOutput, type ProgressRenderer } from './progress/output.js';
export { PlainRenderer } from './progress/plain.js';
export { TtyRenderer, type TtyRendererOptions } from './progress/tty.js';
export { RawJsonRenderer } from './progress/rawjson.js';
export { createRenderer, renderProgress, type ProgressMode } from './progress/render.js';
