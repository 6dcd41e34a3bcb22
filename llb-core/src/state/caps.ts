/**
 * LLB capability IDs (BuildKit `solver/pb/caps.go`). Ops record the caps they need in
 * their metadata; a marshal-time cap set changes what the marshaller emits (the exec
 * default-PATH rule).
 */
export const Caps = {
  /** Cap ID `source.image`. */
  sourceImage: 'source.image',
  /** Cap ID `source.image.resolvemode`. */
  sourceImageResolveMode: 'source.image.resolvemode',
  /** Cap ID `source.image.layerlimit`. */
  sourceImageLayerLimit: 'source.image.layerlimit',
  /** Cap ID `source.local`. */
  sourceLocal: 'source.local',
  /** Cap ID `source.local.unique`. */
  sourceLocalUnique: 'source.local.unique',
  /** Cap ID `source.local.sessionid`. */
  sourceLocalSessionID: 'source.local.sessionid',
  /** Cap ID `source.local.includepatterns`. */
  sourceLocalIncludePatterns: 'source.local.includepatterns',
  /** Cap ID `source.local.followpaths`. */
  sourceLocalFollowPaths: 'source.local.followpaths',
  /** Cap ID `source.local.excludepatterns`. */
  sourceLocalExcludePatterns: 'source.local.excludepatterns',
  /** Cap ID `source.local.sharedkeyhint`. */
  sourceLocalSharedKeyHint: 'source.local.sharedkeyhint',
  /** Cap ID `source.local.differ`. */
  sourceLocalDiffer: 'source.local.differ',
  /** Cap ID `source.git`. */
  sourceGit: 'source.git',
  /** Cap ID `source.git.keepgitdir`. */
  sourceGitKeepDir: 'source.git.keepgitdir',
  /** Cap ID `source.git.fullurl`. */
  sourceGitFullURL: 'source.git.fullurl',
  /** Cap ID `source.git.httpauth`. */
  sourceGitHTTPAuth: 'source.git.httpauth',
  /** Cap ID `source.git.knownsshhosts`. */
  sourceGitKnownSSHHosts: 'source.git.knownsshhosts',
  /** Cap ID `source.git.mountsshsock`. */
  sourceGitMountSSHSock: 'source.git.mountsshsock',
  /** Cap ID `source.http`. */
  sourceHTTP: 'source.http',
  /** Cap ID `source.http.checksum`. */
  sourceHTTPChecksum: 'source.http.checksum',
  /** Cap ID `source.http.perm`. */
  sourceHTTPPerm: 'source.http.perm',
  /** Misspelled in BuildKit itself; kept byte-exact. */
  sourceHTTPUIDGID: 'soruce.http.uidgid',
  /** Cap ID `source.ocilayout`. */
  sourceOCILayout: 'source.ocilayout',
  /** Cap ID `source.buildop.llbfilename`. */
  buildOpLLBFileName: 'source.buildop.llbfilename',
  /** Cap ID `exec.meta.base`. */
  execMetaBase: 'exec.meta.base',
  /** Cap ID `exec.meta.cgroup.parent`. */
  execMetaCgroupParent: 'exec.meta.cgroup.parent',
  /** Cap ID `exec.meta.network`. */
  execMetaNetwork: 'exec.meta.network',
  /** Cap ID `exec.meta.proxyenv`. */
  execMetaProxy: 'exec.meta.proxyenv',
  /** Cap ID `exec.meta.security`. */
  execMetaSecurity: 'exec.meta.security',
  /** Cap ID `exec.meta.security.devices.v1`. */
  execMetaSecurityDeviceWhitelistV1: 'exec.meta.security.devices.v1',
  /** Cap ID `exec.meta.setsdefaultpath`. */
  execMetaSetsDefaultPath: 'exec.meta.setsdefaultpath',
  /** Cap ID `exec.meta.ulimit`. */
  execMetaUlimit: 'exec.meta.ulimit',
  /** Cap ID `exec.meta.removemountstubs.recursive`. */
  execMetaRemoveMountStubsRecursive: 'exec.meta.removemountstubs.recursive',
  /** Cap ID `exec.mount.bind`. */
  execMountBind: 'exec.mount.bind',
  /** Cap ID `exec.mount.bind.readwrite-nooutput`. */
  execMountBindReadWriteNoOutput: 'exec.mount.bind.readwrite-nooutput',
  /** Cap ID `exec.mount.cache`. */
  execMountCache: 'exec.mount.cache',
  /** Cap ID `exec.mount.cache.sharing`. */
  execMountCacheSharing: 'exec.mount.cache.sharing',
  /** Cap ID `exec.mount.selector`. */
  execMountSelector: 'exec.mount.selector',
  /** Cap ID `exec.mount.tmpfs`. */
  execMountTmpfs: 'exec.mount.tmpfs',
  /** Cap ID `exec.mount.tmpfs.size`. */
  execMountTmpfsSize: 'exec.mount.tmpfs.size',
  /** Cap ID `exec.mount.secret`. */
  execMountSecret: 'exec.mount.secret',
  /** Cap ID `exec.mount.ssh`. */
  execMountSSH: 'exec.mount.ssh',
  /** Cap ID `exec.mount.contentcache`. */
  execMountContentCache: 'exec.mount.contentcache',
  /** Cap ID `exec.cgroup`. */
  execCgroupsMounted: 'exec.cgroup',
  /** Cap ID `exec.secretenv`. */
  execSecretEnv: 'exec.secretenv',
  /** Cap ID `exec.validexitcode`. */
  execValidExitCode: 'exec.validexitcode',
  /** Cap ID `file.base`. */
  fileBase: 'file.base',
  /** Cap ID `file.rm.wildcard`. */
  fileRmWildcard: 'file.rm.wildcard',
  /** Cap ID `file.copy.includeexcludepatterns`. */
  fileCopyIncludeExcludePatterns: 'file.copy.includeexcludepatterns',
  /** Cap ID `file.rm.nofollowsymlink`. */
  fileRmNoFollowSymlink: 'file.rm.nofollowsymlink',
  /** Cap ID `constraints`. */
  constraints: 'constraints',
  /** Cap ID `platform`. */
  platform: 'platform',
  /** Cap ID `meta.ignorecache`. */
  metaIgnoreCache: 'meta.ignorecache',
  /** Cap ID `meta.description`. */
  metaDescription: 'meta.description',
  /** Cap ID `meta.exportcache`. */
  metaExportCache: 'meta.exportcache',
  /** Cap ID `cache.remote.gha`. */
  remoteCacheGHA: 'cache.remote.gha',
  /** Cap ID `cache.remote.s3`. */
  remoteCacheS3: 'cache.remote.s3',
  /** Cap ID `cache.remote.azblob`. */
  remoteCacheAzBlob: 'cache.remote.azblob',
  /** Cap ID `mergeop`. */
  mergeOp: 'mergeop',
  /** Cap ID `diffop`. */
  diffOp: 'diffop',
  /** Cap ID `exporter.image.annotations`. */
  annotations: 'exporter.image.annotations',
  /** Cap ID `exporter.image.attestations`. */
  attestations: 'exporter.image.attestations',
  /** Cap ID `exporter.sourcedateepoch`. */
  sourceDateEpoch: 'exporter.sourcedateepoch',
} as const;

/** Every cap BuildKit v0.11.6 defines (what a v0.11.6 daemon reports as supported). */
export const CAPS_V0_11_6: readonly string[] = Object.values(Caps).filter(
  (c) => c !== Caps.execMountContentCache && c !== Caps.execValidExitCode,
);
