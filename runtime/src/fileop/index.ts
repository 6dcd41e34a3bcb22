export { applyFileAction, fileCopy, fileMkdir, fileMkfile, fileRm, fileSymlink, type FileActionRoots } from './actions.js';
export { FileOpError, type FileOpErrorCode, type FileOpErrorOptions } from './errors.js';
export { compileGoPattern, goMatch } from './match.js';
export { parseModeStr, type ModeSet } from './mode.js';
export { resolveOwner } from './owner.js';
export { PatternMatcher } from './patterns.js';
export { resolveInRoot, type ResolveOptions } from './resolve.js';
export { isArchive } from './unpack.js';
export type {
  ChownOpt,
  FileAction,
  FileActionCopy,
  FileActionMkDir,
  FileActionMkFile,
  FileActionRm,
  FileActionSymlink,
  FileOpOptions,
  Owner,
  Timestamp,
  UserOpt,
} from './types.js';
