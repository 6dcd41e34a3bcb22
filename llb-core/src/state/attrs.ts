/** Wire strings of LLB source ops (BuildKit `solver/pb/attr.go` and source schemes), in one place. */
export const Attr = {
  keepGitDir: 'git.keepgitdir',
  fullRemoteURL: 'git.fullurl',
  authHeaderSecret: 'git.authheadersecret',
  authTokenSecret: 'git.authtokensecret',
  knownSSHHosts: 'git.knownsshhosts',
  mountSSHSock: 'git.mountsshsock',
  localSessionID: 'local.session',
  localUniqueID: 'local.unique',
  includePatterns: 'local.includepattern',
  followPaths: 'local.followpaths',
  excludePatterns: 'local.excludepatterns',
  sharedKeyHint: 'local.sharedkeyhint',
  localDiffer: 'local.differ',
  llbDefinitionFilename: 'llbbuild.filename',
  httpChecksum: 'http.checksum',
  httpFilename: 'http.filename',
  httpPerm: 'http.perm',
  httpUID: 'http.uid',
  httpGID: 'http.gid',
  imageResolveMode: 'image.resolvemode',
  imageRecordType: 'image.recordtype',
  imageLayerLimit: 'image.layerlimit',
  ociLayoutSessionID: 'oci.session',
  ociLayoutStoreID: 'oci.store',
  ociLayoutLayerLimit: 'oci.layerlimit',
} as const;

/** Source identifier schemes. */
export const Scheme = {
  image: 'docker-image://',
  local: 'local://',
  git: 'git://',
  ociLayout: 'oci-layout://',
} as const;

/** `pb.LLBDefinitionInput`: the BuildOp input holding the nested definition. */
export const LLB_DEFINITION_INPUT = 'buildkit.llb.definition';
/** `pb.RootMount`. */
export const ROOT_MOUNT = '/';
