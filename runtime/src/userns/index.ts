export { USERNS_ENV, callerUid, idMapCovers, mappedIds, parseIdMap, parseUsernsEnv, usernsState, type IdMapLine, type UsernsMode, type UsernsState } from './state.js';
export { rootlessProcessIds, type ProcessIds } from './exec.js';
export { RootlessError, explainUnmappedOwner, imagePath, subidHint, unmappedOwnerError } from './errors.js';
