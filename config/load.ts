/**
 * Reads gateway.yaml: YAML → `${ENV}` interpolation → strict schema validation.
 *
 * Interpolation happens on parsed string values, never on the raw text, so a variable's value cannot
 * inject YAML structure. Every problem is reported with the path of the offending field, e.g.
 * `routes[1].plugins[0].issuer: expected string`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { GatewayConfigSchema, type GatewayConfig } from './schema.ts';
import { federationReferenceProblems } from './federation.ts';

export class ConfigError extends Error {
  readonly code = 'GW_ERR_CONFIG';
  /** One line per problem: `<path>: <problem>`. */
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`invalid configuration in ${source}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/** `routes[1].plugins[0].issuer` from `['routes', 1, 'plugins', 0, 'issuer']`. */
export function formatPath(segments: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out ? `.${String(s)}` : String(s);
  }
  return out || '(root)';
}

/** Turns zod issues into `<path>: <problem>` lines, with `prefix` segments before each path. */
export function describeIssues(error: z.ZodError, prefix: ReadonlyArray<PropertyKey> = []): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${formatPath([...prefix, ...issue.path, key])}: unknown key`);
      continue;
    }
    if (issue.code === 'invalid_union') {
      // A union error is more useful as the errors of the closest alternative.
      const alternatives = issue.errors.map((errs) => errs.length);
      const best = issue.errors[alternatives.indexOf(Math.min(...alternatives))];
      if (best && best.length > 0) {
        for (const sub of best) {
          lines.push(...describeIssues({ issues: [sub] } as unknown as z.ZodError, [...prefix, ...issue.path]));
        }
        continue;
      }
    }
    // zod says "Invalid input: expected string, received undefined" for a key that is not there.
    const missing = issue.code === 'invalid_type' && /received undefined$/.test(issue.message);
    lines.push(`${formatPath([...prefix, ...issue.path])}: ${missing ? `required (${issue.expected})` : issue.message}`);
  }
  return lines;
}

const PLACEHOLDER = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree. `$$` is a literal `$`.
 * An unset variable without a default is a problem (an empty value is allowed: `${VAR:-}`).
 */
export function interpolate(tree: unknown, env: Env, problems: string[], at: PropertyKey[] = []): unknown {
  if (typeof tree === 'string') {
    return tree.replace(PLACEHOLDER, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$$') return '$';
      const value = env[name!];
      if (value !== undefined && value !== '') return value;
      if (fallback !== undefined) return fallback;
      if (value === '') return '';
      problems.push(`${formatPath(at)}: environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
      return '';
    });
  }
  if (Array.isArray(tree)) return tree.map((v, i) => interpolate(v, env, problems, [...at, i]));
  if (tree && typeof tree === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(tree)) out[k] = interpolate(v, env, problems, [...at, k]);
    return out;
  }
  return tree;
}

export interface LoadedConfig {
  config: GatewayConfig;
  /** Absolute path of the file, or `<inline>`. */
  source: string;
  /** Folder against which relative paths in the config resolve. */
  dir: string;
}

/** Parses and validates config text. Throws ConfigError listing every problem found. */
export function parseConfig(text: string, opts: { env: Env; source: string; dir: string }): LoadedConfig {
  // `merge`: YAML merge keys (`<<: *defaults`, then keys that override them), as in docker compose.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(opts.source, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`));
  }
  const problems: string[] = [];
  const tree = interpolate(doc.toJS(), opts.env, problems);
  if (problems.length > 0) throw new ConfigError(opts.source, problems);
  const result = GatewayConfigSchema.safeParse(withoutExtensionKeys(tree ?? {}));
  if (!result.success) throw new ConfigError(opts.source, describeIssues(result.error));
  const crossProblems = checkReferences(result.data);
  if (crossProblems.length > 0) throw new ConfigError(opts.source, crossProblems);
  return { config: result.data, source: opts.source, dir: opts.dir };
}

export async function loadConfigFile(file: string, env: Env): Promise<LoadedConfig> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(abs, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parseConfig(text, { env, source: abs, dir: path.dirname(abs) });
}

/**
 * Top-level keys starting with `x-` are the config's own scratch space, as in docker compose: a place
 * for YAML anchors (`x-auth: &auth [...]`, then `plugins: *auth`). They are dropped before validation;
 * any other unknown key is still an error.
 */
function withoutExtensionKeys(tree: unknown): unknown {
  if (!tree || typeof tree !== 'object' || Array.isArray(tree)) return tree;
  return Object.fromEntries(Object.entries(tree).filter(([k]) => !k.startsWith('x-')));
}

/** Checks that names point at things that exist and that routes do not shadow each other. */
function checkReferences(config: GatewayConfig): string[] {
  const problems: string[] = [];
  const listeners = new Set<string>();
  const ports = new Map<string, string>();
  config.listeners.forEach((l, i) => {
    if (listeners.has(l.name)) problems.push(`listeners[${i}].name: "${l.name}" is used twice`);
    listeners.add(l.name);
    const bind = `${l.host}:${l.port}`;
    if (l.port !== 0 && ports.has(bind)) problems.push(`listeners[${i}].port: ${bind} is also used by listener "${ports.get(bind)}"`);
    ports.set(bind, l.name);
  });
  const seen = new Map<string, number>();
  // Route names label logs, audit lines and metrics: two routes with one name could not be told apart.
  // (Default names, `<listener><path>`, contain a "/" that given names cannot: they collide only when
  // the paths do, which is reported below.)
  const names = new Map<string, number>();
  config.routes.forEach((r, i) => {
    if (r.name !== undefined) {
      if (names.has(r.name)) problems.push(`routes[${i}].name: "${r.name}" is also the name of routes[${names.get(r.name)}]`);
      else names.set(r.name, i);
    }
    if (!listeners.has(r.listener)) {
      problems.push(`routes[${i}].listener: no listener named "${r.listener}" (have: ${[...listeners].join(', ')})`);
    }
    if (!(r.upstream in config.upstreams)) {
      problems.push(`routes[${i}].upstream: no upstream named "${r.upstream}" (have: ${Object.keys(config.upstreams).join(', ') || 'none'})`);
    }
    const key = `${r.listener} ${normalizeRoutePath(r.path)}`;
    if (seen.has(key)) problems.push(`routes[${i}].path: "${r.path}" on listener "${r.listener}" is already routed by routes[${seen.get(key)}]`);
    seen.set(key, i);
  });
  problems.push(...federationReferenceProblems(config.upstreams));
  return problems;
}

/** `/mcp/` and `/mcp` are the same prefix. */
export function normalizeRoutePath(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}
