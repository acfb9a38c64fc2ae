/**
 * The built-in plugins, by the `type` name gateway.yaml uses. A plugin author's module is loaded from
 * its path instead (config/compile.ts) and never needs to be listed here.
 */
import type { PluginDefinition } from '../gateway/contract.ts';
import audit from './audit.ts';
import graphRewrite from './graph-rewrite/index.ts';
import jwt from './jwt/index.ts';
import rateLimit from './rate-limit/index.ts';
import token from './token.ts';
import toolPolicy from './tool-policy.ts';

export const builtinPlugins: Readonly<Record<string, PluginDefinition>> = Object.fromEntries(
  [token, jwt, rateLimit, graphRewrite, toolPolicy, audit].map((d) => [d.type, d as unknown as PluginDefinition]),
);
