# syntax=docker/dockerfile:1
# One image for every process of the gateway; the command picks which one runs:
#   docker run --env-file .env IMAGE                                   # API (the default)
#   docker run --env-file .env IMAGE node apps/worker/dist/main.js     # send worker
#   ... apps/webhooks/dist/main.js (callbacks), apps/dashboard/dist/main.js (Bull Board),
#   ... apps/simulator/dist/main.js (fake Twilio and Octopush, for development)
# docker-compose.yml runs them all.

ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-slim AS base
ENV CI=true
# The same pnpm major as scripts/ensure.sh installs.
RUN npm install -g pnpm@10 --no-fund --no-audit --loglevel=error
WORKDIR /app

# Build: every dependency, then tsc for each package and app.
FROM base AS build
# The lockfile alone decides what is downloaded, so this layer stays cached until it changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch --ignore-scripts
COPY . .
# No install script is needed to compile; the ones listed in pnpm-workspace.yaml belong to test tools.
RUN pnpm install --frozen-lockfile --offline --ignore-scripts \
 && pnpm -r --workspace-concurrency=2 run build
# Production dependencies only, in the same workspace layout (apps find packages/* through node_modules),
# and nothing that only builds or tests.
# TypeScript is in the lockfile's production tree only as valibot's optional peer (types, via Bull Board):
# nothing loads it at run time, so its 23 MB go, with the links to it.
RUN rm -rf node_modules apps/*/node_modules packages/*/node_modules \
 && pnpm install --frozen-lockfile --offline --prod \
 && rm -rf node_modules/.pnpm/typescript@* && find node_modules/.pnpm -xtype l -name typescript -delete \
 && rm -rf test bench scripts .ci deploy monitoring apps/*/src packages/*/src apps/*/tsconfig*.json \
      packages/*/tsconfig*.json tsconfig*.json vitest.config.ts biome.json

# Runtime: Node, the built apps and their production dependencies, run as the unprivileged `node` user.
FROM node:${NODE_VERSION}-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0
WORKDIR /app
# Owned by root and only readable by `node`: the processes cannot rewrite their own code.
COPY --from=build /app /app
USER node
EXPOSE 3000 3001 3002 3003
CMD ["node", "apps/api/dist/main.js"]
