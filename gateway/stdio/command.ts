/**
 * Turns a stdio upstream's config into what `spawn` needs, in two steps:
 * - once, when the stdio upstream is built: resolve the command to an executable (fail at load, not at the
 *   first request), check the templates, and decide which variables the pool key must pin;
 * - per process: render args, env, pathEnv and cwd with the pool's template values.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, openSync, readSync, closeSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { StdioUpstreamConfig } from '../../config/schema.ts';
import { StdioConfigError } from './errors.ts';
import { renderTemplate, templateVariables, type TemplateValues, type TemplateVariable } from './templates.ts';

/** The gateway's own node_modules/.bin (gateway/stdio/ → repository root). */
const GATEWAY_BIN = path.resolve(import.meta.dirname, '../../node_modules/.bin');

/**
 * Inherited environment variables that hold credentials are not passed to children: the gateway holds
 * secrets (signing keys, admin tokens, its Redis and database URLs) that an MCP server has no business
 * reading. A child that needs one gets it explicitly through `env:` (`REDIS_URL: ${REDIS_URL}`).
 *
 * A variable is withheld when its NAME looks like a credential or a connection string, or its VALUE
 * carries a URL with credentials: userinfo (`redis://:pw@host`, `https://token@host`, anywhere in the
 * value, so lists of URLs count) or a credential-like query parameter (`?api_key=…`). Names alone miss
 * `UPSTREAM=https://user:pass@…`; values alone miss `DATABASE_URL=postgres://host/db` with the password
 * in a file the URL's user selects, and tell a child where the gateway's own data lives.
 */
const SECRET_NAME = /SECRET|TOKEN|PASSW|API_?KEY|PRIVATE|CREDENTIAL|SESSION_KEY/i;
const CONNECTION_STRING_NAME = /(^|_)(DATABASE|DB|REDIS|MONGO(DB)?|POSTGRES(QL)?|PG|MYSQL|MARIADB|AMQP|RABBITMQ|BROKER)_?(URL|URI|DSN)$|(^|_)DSN$/i;
/** `scheme://userinfo@`: userinfo cannot contain `/ ? # @` (RFC 3986), so a later `@` in a path does not match. */
const URL_WITH_USERINFO = /[a-z][a-z0-9+.-]*:\/\/[^\s/?#@]+@/i;
const URL_WITH_CREDENTIAL_PARAM = /[a-z][a-z0-9+.-]*:\/\/[^\s?#]*\?([^\s#]*?[&;])?[^=&;\s]*(pass(word|wd)?|pwd|secret|token|api_?key|access_?key|sig(nature)?)[^=&;\s]*=/i;

/** Whether an inherited variable must not reach a child (see above). Exported for tests. */
export function isCredentialEnv(name: string, value: string): boolean {
  return SECRET_NAME.test(name) || CONNECTION_STRING_NAME.test(name) || URL_WITH_USERINFO.test(value) || URL_WITH_CREDENTIAL_PARAM.test(value);
}

export interface ResolvedCommand {
  /** The executable to spawn. */
  file: string;
  /** Arguments placed before the configured ones (the script, when a node script is run with our node). */
  prefixArgs: string[];
}

export interface SpawnSpec {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Rendered pathEnv values (absolute), whose folders are created before spawning. */
  dataPaths: string[];
}

/** A prepared stdio upstream: everything checked once, rendered per pool. */
export interface PreparedCommand {
  readonly command: ResolvedCommand;
  /** Variables the pool key uses: processes are keyed (and limited) by them. */
  readonly poolKeyVariables: ReadonlySet<TemplateVariable>;
  /** Names of the gateway's variables withheld from children (never their values), for the log. */
  readonly withheldEnv: readonly string[];
  render(values: TemplateValues): SpawnSpec;
  renderPoolKey(values: TemplateValues): string;
}

export function prepareCommand(name: string, cfg: StdioUpstreamConfig, configDir: string): PreparedCommand {
  const at = `upstreams.${name}.stdio`;
  if (/\{[a-z]+\}/.test(cfg.command)) {
    throw new StdioConfigError(`${at}.command`, 'the command cannot use templates; put them in args');
  }
  const command = resolveCommand(cfg.command, configDir, `${at}.command`);

  const used = new Set<TemplateVariable>();
  const collect = (template: string, where: string) => {
    for (const v of templateVariables(template, where)) used.add(v);
  };
  cfg.args.forEach((a, i) => collect(a, `${at}.args[${i}]`));
  for (const [k, v] of Object.entries(cfg.env)) collect(v, `${at}.env.${k}`);
  for (const [k, v] of Object.entries(cfg.pathEnv)) collect(v, `${at}.pathEnv.${k}`);
  if (cfg.cwd !== undefined) collect(cfg.cwd, `${at}.cwd`);
  const poolKeyVariables = templateVariables(cfg.poolKey, `${at}.poolKey`);

  // In shared mode one process serves every session with the same pool key, so anything that shapes
  // the process (a data file per tenant, a per-user argument) must be pinned by the pool key; otherwise
  // a second tenant would be served by a process started with the first tenant's data file.
  if (cfg.mode === 'shared') {
    for (const v of used) {
      if (!poolKeyVariables.has(v)) {
        throw new StdioConfigError(
          `${at}.poolKey`,
          `args/env/pathEnv/cwd use {${v}}, so the pool key must contain {${v}} too (it is "${cfg.poolKey}")`,
        );
      }
    }
  }

  const inherited: NodeJS.ProcessEnv = {};
  const withheldEnv: string[] = [];
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    // Listed in env: means the operator chose to pass it; it is set from the config below anyway.
    if (isCredentialEnv(k, v)) {
      if (!(k in cfg.env)) withheldEnv.push(k);
    } else inherited[k] = v;
  }
  // Scripts with `#!/usr/bin/env node` find the gateway's node first, not an older system node.
  const searchPath = [path.dirname(process.execPath), path.join(configDir, 'node_modules/.bin'), GATEWAY_BIN, process.env.PATH ?? '']
    .filter(Boolean)
    .join(path.delimiter);

  return {
    command,
    poolKeyVariables,
    withheldEnv,
    renderPoolKey: (values) => renderTemplate(cfg.poolKey, values),
    render(values) {
      const env: NodeJS.ProcessEnv = { ...inherited, PATH: searchPath };
      for (const [k, v] of Object.entries(cfg.env)) env[k] = renderTemplate(v, values);
      const dataPaths: string[] = [];
      for (const [k, v] of Object.entries(cfg.pathEnv)) {
        const abs = path.resolve(configDir, renderTemplate(v, values));
        env[k] = abs;
        dataPaths.push(abs);
      }
      return {
        file: command.file,
        args: [...command.prefixArgs, ...cfg.args.map((a) => renderTemplate(a, values))],
        env,
        cwd: cfg.cwd === undefined ? configDir : path.resolve(configDir, renderTemplate(cfg.cwd, values)),
        dataPaths,
      };
    },
  };
}

/**
 * `node` is the gateway's own node. A bare name is looked up in <configDir>/node_modules/.bin, the
 * gateway's node_modules/.bin, then PATH; a name with a slash resolves against configDir. A JavaScript
 * file (by extension or a node shebang) is run with the gateway's node directly: no `env` hop, no
 * older system node, and signals reach the server itself.
 */
export function resolveCommand(command: string, configDir: string, where: string): ResolvedCommand {
  if (command === 'node') return { file: process.execPath, prefixArgs: [] };
  let found: string | undefined;
  if (command.includes('/') || command.includes('\\')) {
    const candidate = path.resolve(configDir, command);
    if (isExecutableFile(candidate) || isNodeScript(candidate)) found = candidate;
  } else {
    const dirs = [path.join(configDir, 'node_modules/.bin'), GATEWAY_BIN, ...(process.env.PATH ?? '').split(path.delimiter)];
    for (const dir of dirs.filter(Boolean)) {
      const candidate = path.join(dir, command);
      if (isExecutableFile(candidate)) {
        found = candidate;
        break;
      }
    }
  }
  if (!found) throw new StdioConfigError(where, `command "${command}" not found (looked in node_modules/.bin and PATH)`);
  const real = realpathSync(found);
  if (isNodeScript(real)) return { file: process.execPath, prefixArgs: [real] };
  return { file: found, prefixArgs: [] };
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function isNodeScript(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
  } catch {
    return false;
  }
  if (/\.(c|m)?js$/.test(file)) return true;
  const head = Buffer.alloc(128);
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const n = readSync(fd, head, 0, head.length, 0);
    const firstLine = head.subarray(0, n).toString('utf8').split('\n')[0];
    return firstLine.startsWith('#!') && /\bnode\b/.test(firstLine);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * spawn() with umask 077 for the child, so the files it creates (pathEnv data) are private to the
 * gateway's user. The umask is per process, but spawn() forks before it returns: the child inherits
 * the mask set here and no other code of this process runs while it is set.
 */
export function spawnPrivate(...args: Parameters<typeof spawn>): ChildProcess {
  const previous = process.umask(0o077);
  try {
    return spawn(...args);
  } finally {
    process.umask(previous);
  }
}
