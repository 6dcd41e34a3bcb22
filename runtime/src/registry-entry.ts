/**
 * `@kiln/runtime/registry`: the registry client and image-config resolution alone, for callers
 * that only look images up (`kiln llb`). The full `@kiln/runtime` entry also loads the stores,
 * snapshotter, executor, layers and exporters, which costs a short-lived process ~0.1 s.
 * @module
 */
export { RegistryClient, type RegistryClientOptions, type ResolvedReference } from './registry/client.js';
export { registryMetaResolver, type ImageMetaResolver, type ResolveImageConfigOptions, type ResolvedImageConfig } from './registry/meta-resolver.js';
export type { RegistryHostOptions, RegistryHosts, RegistryKeyPair } from './registry/hosts.js';
export { trustedFetch, trustedSecureContext } from './net/trust.js';
export { dockerConfigCredentials, staticCredentials, type CredentialProvider, type RegistryCredentials } from './registry/auth.js';
