// A Node app built with npm in one stage and copied into a slim one, as the usual multi-stage
// Dockerfile does. `kiln build examples/ts-node-app --root .kiln-demo -t hello-node` after `npm run demo`;
// `kiln check examples/ts-node-app` type-checks it.
import { image, type Ctx } from "kiln";
import { npmBuild, npmCi } from "./lib/npm.ts";
import pkg from "./package.json";

export default ({ local, args }: Ctx) => {
  // .dockerignore keeps node_modules, dist and .git out of the context, as for a Dockerfile build
  const src = local("context");
  const env = { NODE_ENV: args["NODE_ENV"] ?? "production" };
  const base = image("busybox").dir("/app");
  const built = npmBuild(npmCi(base, src), src, env);
  return image("busybox")
    .dir("/app")
    .copy(built, "/app/dist", ".")
    .copy(built, "/app/node_modules", "node_modules")
    .image({
      cmd: ["cat", "/app/server.js"],
      workdir: "/app",
      env,
      labels: { "org.opencontainers.image.title": pkg.name, "org.opencontainers.image.version": pkg.version },
      exposedPorts: [3000],
      stopSignal: "SIGINT",
      healthcheck: { cmd: "test -f /app/server.js", interval: "30s", timeout: "3s", retries: 3 },
    });
};
