export { USERNS_ENV, callerUid, idMapCovers, mappedIds, parseIdMap, parseUsernsEnv, usernsMaps, usernsState, type IdMapLine, type UsernsMode, type UsernsState } from './state.js';
export { rootlessProcessIds, type ProcessIds } from './exec.js';
export { RootlessError, type RootlessErrorCode, explainUnmappedOwner, imagePath, subidHint, unmappedOwnerError } from './errors.js';
