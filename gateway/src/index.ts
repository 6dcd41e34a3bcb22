/**
 * @kiln/gateway: picks a frontend (`--frontend`, `build-arg:BUILDKIT_SYNTAX` or the entry
 * file's `# syntax=` line), serves it a {@link GatewayClient} in process, and hands the LLB it
 * produces to the solver through a {@link SolveBackend}.
 * @packageDocumentation
 */
export { GatewayError, type GatewayErrorCode } from './errors.js';
export { FrontendRegistry, DOCKERFILE_FRONTEND, canonicalFrontendName } from './registry.js';
export type { SolveBackend, SolvedRef, BackendSolveOptions, FrontendContainerRequest, FrontendContainerResult, FrontendContainerFile, BackendContainerRequest, BackendContainerMount } from './backend.js';
export { GatewayClient, GatewayRef, type GatewayClientOptions } from './client.js';
export { OpenContainers } from './containers.js';
export { Gateway, MAX_FRONTEND_DEPTH, type GatewayRequest, type GatewayResult, type GatewayAttestation, type GatewayOptions } from './gateway.js';
export { selectFrontend, type FrontendSelection, type SelectFrontendOptions } from './select.js';
// gateway.v0: frontend images run in a container, LLBBridge over their stdin/stdout.
export { GATEWAY_FRONTEND, ExternalFrontendError, createGatewayFrontend, type GatewayFrontendOptions, type ServeLLBBridge } from './external/gateway-frontend.js';
// LLBBridge (BuildKit's frontend gRPC protocol), both sides, over any byte stream.
export { serveLLBBridge, type BridgeServeOptions } from './llbbridge/serve.js';
export { connectLLBBridge, frontendOptsFromEnv, type BridgeFrontendClient, type BridgeConnectOptions } from './llbbridge/connect.js';
export { GrpcStatusError } from './llbbridge/grpc.js';
