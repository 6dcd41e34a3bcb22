/** Wire strings of LLB source ops (BuildKit `solver/pb/attr.go` and source schemes), in one place. */
export const Attr = {
  /** Wire string `git.keepgitdir`. */
  keepGitDir: 'git.keepgitdir',
  /** Wire string `git.fullurl`. */
  fullRemoteURL: 'git.fullurl',
  /** Wire string `git.authheadersecret`. */
  authHeaderSecret: 'git.authheadersecret',
  /** Wire string `git.authtokensecret`. */
  authTokenSecret: 'git.authtokensecret',
  /** Wire string `git.knownsshhosts`. */
  knownSSHHosts: 'git.knownsshhosts',
  /** Wire string `git.mountsshsock`. */
  mountSSHSock: 'git.mountsshsock',
  /** Wire string `local.session`. */
  localSessionID: 'local.session',
  /** Wire string `local.unique`. */
  localUniqueID: 'local.unique',
  /** Wire string `local.includepattern`. */
  includePatterns: 'local.includepattern',
  /** Wire string `local.followpaths`. */
  followPaths: 'local.followpaths',
  /** Wire string `local.excludepatterns`. */
  excludePatterns: 'local.excludepatterns',
  /** Wire string `local.sharedkeyhint`. */
  sharedKeyHint: 'local.sharedkeyhint',
  /** Wire string `local.differ`. */
  localDiffer: 'local.differ',
  /** Wire string `llbbuild.filename`. */
  llbDefinitionFilename: 'llbbuild.filename',
  /** Wire string `http.checksum`. */
  httpChecksum: 'http.checksum',
  /** Wire string `http.filename`. */
  httpFilename: 'http.filename',
  /** Wire string `http.perm`. */
  httpPerm: 'http.perm',
  /** Wire string `http.uid`. */
  httpUID: 'http.uid',
  /** Wire string `http.gid`. */
  httpGID: 'http.gid',
  /** Wire string `image.resolvemode`. */
  imageResolveMode: 'image.resolvemode',
  /** Wire string `image.recordtype`. */
  imageRecordType: 'image.recordtype',
  /** Wire string `image.layerlimit`. */
  imageLayerLimit: 'image.layerlimit',
  /** Wire string `oci.session`. */
  ociLayoutSessionID: 'oci.session',
  /** Wire string `oci.store`. */
  ociLayoutStoreID: 'oci.store',
  /** Wire string `oci.layerlimit`. */
  ociLayoutLayerLimit: 'oci.layerlimit',
} as const;

/** Source identifier schemes. */
export const Scheme = {
  /** Wire string `docker-image://`. */
  image: 'docker-image://',
  /** Wire string `local://`. */
  local: 'local://',
  /** Wire string `git://`. */
  git: 'git://',
  /** Wire string `oci-layout://`. */
  ociLayout: 'oci-layout://',
} as const;

/** `pb.LLBDefinitionInput`: the BuildOp input holding the nested definition. */
export const LLB_DEFINITION_INPUT = 'buildkit.llb.definition';
/** `pb.RootMount`. */
export const ROOT_MOUNT = '/';
