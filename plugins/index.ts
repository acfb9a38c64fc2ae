/**
 * The built-in plugins, by the `type` name gateway.yaml uses. Each is loaded on first use, so a gateway
 * only loads (and keeps in memory) the plugins its configuration names. A plugin author's module is
 * loaded from its path instead (config/compile.ts) and never needs to be listed here.
 */
import type { PluginDefinition } from '../gateway/contract.ts';

type Loader = () => Promise<PluginDefinition>;
const load = (mod: Promise<{ default: unknown }>): Promise<PluginDefinition> => mod.then((m) => m.default as PluginDefinition);

export const builtinPlugins: Readonly<Record<string, Loader>> = {
  token: () => load(import('./token.ts')),
  jwt: () => load(import('./jwt/index.ts')),
  'rate-limit': () => load(import('./rate-limit/index.ts')),
  'graph-rewrite': () => load(import('./graph-rewrite/index.ts')),
  'tool-policy': () => load(import('./tool-policy.ts')),
  audit: () => load(import('./audit.ts')),
};
