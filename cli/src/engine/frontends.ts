import { FrontendRegistry, DOCKERFILE_FRONTEND } from '@kiln/gateway';
import type { Frontend } from '@kiln/llb-core';

const pending: Frontend = () => Promise.reject(new Error('the Dockerfile frontend is not wired yet'));

/** The frontends this kiln serves in process. */
export function createFrontendRegistry(): FrontendRegistry {
  return new FrontendRegistry().register([DOCKERFILE_FRONTEND, 'kiln/dockerfile'], pending);
}
