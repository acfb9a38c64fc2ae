/**
 * Turns a validated config into what the gateway runs: plugin definitions resolved (built-in or a
 * module path), their options validated by their own schemas, dependencies between plugins checked,
 * and, when asked, plugin instances built once per route.
 *
 * Validation (`resolvePlugins`) is separate from instantiation (`instantiateRoutes`) so that
 * `--check` and hot reload can refuse a bad file before anything is started.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type { Plugin, PluginDefinition, RouteInfo, SharedServices, ListenerInfo } from '../gateway/contract.ts';
import { builtinPlugins } from '../plugins/index.ts';
import { ConfigError, describeIssues, normalizeRoutePath, type LoadedConfig } from './load.ts';
import type { RouteConfig } from './schema.ts';

export interface ResolvedPlugin {
  definition: PluginDefinition;
  /** The plugin's options after its schema's defaults and transforms. */
  options: unknown;
  /** Where it is declared, for messages: `routes[0].plugins[1]`. */
  at: string;
}

export interface ResolvedRoute {
  index: number;
  config: RouteConfig;
  name: string;
  path: string;
  plugins: ResolvedPlugin[];
}

function isPluginDefinition(value: unknown): value is PluginDefinition {
  const v = value as PluginDefinition | undefined;
  return !!v && typeof v.type === 'string' && typeof v.create === 'function' &&
    !!v.config && typeof (v.config as { safeParse?: unknown }).safeParse === 'function';
}

const isModulePath = (type: string) => type.startsWith('.') || type.startsWith('/');

/** Plugin modules a config loads from a path, absolute: the gateway reloads when one changes. */
export function pluginModuleFiles(loaded: LoadedConfig): string[] {
  const types = loaded.config.routes.flatMap((r) => r.plugins.map((p) => p.type)).filter(isModulePath);
  return [...new Set(types.map((t) => path.resolve(loaded.dir, t)))];
}

/** The digest of each plugin file's content when the process first imported it. */
const firstVersions = new Map<string, string>();

/**
 * Imports a plugin module by path. Node caches a module by URL for the life of the process, so a file
 * whose content changed since its first import is imported under a URL carrying a digest of its
 * content, and is loaded anew on reload; an unchanged one is the cached module. The first version is
 * imported by its plain URL, so it is the same module instance as anyone else's import of that file
 * (state a plugin shares with code that imports it, e.g. a test reading what the plugin recorded).
 * Only the file itself is versioned: modules it imports keep Node's cache (docs/plugins.md). Every
 * version loaded stays in memory until the process ends.
 */
async function loadPluginModule(ref: string, dir: string): Promise<PluginDefinition | string> {
  const file = path.resolve(dir, ref);
  let mod: Record<string, unknown>;
  try {
    const version = createHash('sha256').update(await readFile(file)).digest('hex').slice(0, 16);
    const first = firstVersions.get(file) ?? version;
    firstVersions.set(file, first);
    const url = pathToFileURL(file).href;
    mod = (await import(version === first ? url : `${url}?v=${version}`)) as Record<string, unknown>;
  } catch (err) {
    return `cannot load plugin module ${file}: ${(err as Error).message.split('\n')[0]}`;
  }
  const def = mod.default ?? mod.plugin;
  if (!isPluginDefinition(def)) {
    return `${file} must export a plugin definition as default (an object with type, config (a zod schema) and create; see docs/plugins.md)`;
  }
  return def;
}

/** Resolves and validates every route's plugins. Throws ConfigError listing every problem. */
export async function resolvePlugins(loaded: LoadedConfig): Promise<ResolvedRoute[]> {
  const problems: string[] = [];
  const routes: ResolvedRoute[] = [];
  const modules = new Map<string, PluginDefinition | string>();
  for (const [i, route] of loaded.config.routes.entries()) {
    const resolved: ResolvedPlugin[] = [];
    for (const [j, ref] of route.plugins.entries()) {
      const at = `routes[${i}].plugins[${j}]`;
      const { type, ...options } = ref;
      let def: PluginDefinition | string | undefined;
      if (isModulePath(type)) {
        if (!modules.has(type)) modules.set(type, await loadPluginModule(type, loaded.dir));
        def = modules.get(type);
      } else {
        const loadBuiltin = Object.hasOwn(builtinPlugins, type) ? builtinPlugins[type] : undefined;
        def = loadBuiltin
          ? await loadBuiltin()
          : `unknown plugin type "${type}" (built-in: ${Object.keys(builtinPlugins).join(', ')}; or a module path starting with "./")`;
      }
      if (def === undefined || typeof def === 'string') {
        problems.push(`${at}.type: ${def ?? 'not loaded'}`);
        continue;
      }
      const parsed = def.config.safeParse(options);
      if (!parsed.success) {
        problems.push(...describeIssues(parsed.error, ['routes', i, 'plugins', j]));
        continue;
      }
      for (const needed of def.requires ?? []) {
        if (!resolved.some((p) => p.definition.type === needed)) {
          problems.push(`${at}: plugin "${def.type}" needs a "${needed}" plugin before it in the same route`);
        }
      }
      resolved.push({ definition: def, options: parsed.data, at });
    }
    routes.push({
      index: i,
      config: route,
      name: route.name ?? `${route.listener}${normalizeRoutePath(route.path)}`,
      path: normalizeRoutePath(route.path),
      plugins: resolved,
    });
  }
  if (problems.length > 0) throw new ConfigError(loaded.source, problems);
  return routes;
}

export interface RoutePlugins {
  route: ResolvedRoute;
  info: RouteInfo;
  plugins: Plugin[];
}

/**
 * Builds plugin instances for every route. If one fails, those already built are closed and the
 * error names the plugin.
 */
export async function instantiateRoutes(
  routes: ResolvedRoute[],
  ctx: { listeners: ReadonlyMap<string, ListenerInfo>; log: Logger; dir: string; shared: SharedServices; source: string },
): Promise<RoutePlugins[]> {
  const built: RoutePlugins[] = [];
  try {
    for (const route of routes) {
      const info: RouteInfo = {
        name: route.name,
        path: route.path,
        listener: ctx.listeners.get(route.config.listener)!,
        upstream: route.config.upstream,
      };
      const plugins: Plugin[] = [];
      built.push({ route, info, plugins });
      for (const p of route.plugins) {
        try {
          plugins.push(
            await p.definition.create(p.options, {
              log: ctx.log.child({ plugin: p.definition.type, route: route.name }),
              route: info,
              configDir: ctx.dir,
              shared: ctx.shared,
            }),
          );
        } catch (err) {
          throw new ConfigError(ctx.source, [`${p.at}: plugin "${p.definition.type}" could not start: ${(err as Error).message}`]);
        }
      }
    }
  } catch (err) {
    await closePlugins(built.flatMap((b) => b.plugins), ctx.log);
    throw err;
  }
  return built;
}

export async function closePlugins(plugins: Plugin[], log: Logger): Promise<void> {
  await Promise.all(
    plugins.map(async (p) => {
      try {
        await p.close?.();
      } catch (err) {
        log.warn({ err, plugin: p.name }, 'plugin failed to close');
      }
    }),
  );
}
