// Helpers shared by the stages of kiln.build.ts. A real project runs npm here; this example
// fakes `npm ci` and `npm run build` with busybox so it builds offline.
import { cache, sh, type State } from "kiln";

/** `npm ci` with npm's download cache kept across builds (never in the image). */
export function npmCi(base: State, src: State): State {
  return base
    .copy(src, "package.json", ".")
    .run(sh`mkdir -p /root/.npm node_modules/left-pad && echo "module.exports = 1" > node_modules/left-pad/index.js && date >> /root/.npm/runs`, {
      mounts: { "/root/.npm": cache("/npm", { sharing: "locked" }) },
      name: "npm ci",
    });
}

/** `npm run build` of `src` on top of the installed dependencies, into /app/dist. */
export function npmBuild(deps: State, src: State, env: Readonly<Record<string, string>>): State {
  return deps.copy(src, "src", "src").run(sh`mkdir -p dist && cp src/server.js dist/ && echo "$NODE_ENV" > dist/env`, { env, name: "npm run build" });
}
