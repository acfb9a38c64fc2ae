/**
 * `npm start [-- --config FILE] [-- --check]`: runs the gateway, or validates a config and exits.
 *
 * Exit codes: 0 ok, 1 invalid configuration, 2 usage error, 3 start-up failure (e.g. port in use).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { resolvePlugins } from '../config/compile.ts';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import { startGateway } from './gateway.ts';
import { SessionSealer } from './session-seal.ts';

const USAGE = `usage: npm start -- [--config gateway.yaml] [--check]
  --config FILE  the configuration to use (default ./gateway.yaml)
  --check        validate the configuration (schema, references, plugin options) and exit`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: { config: { type: 'string', short: 'c' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const configPath = path.resolve(args.config ?? process.env.GATEWAY_CONFIG ?? 'gateway.yaml');
  try {
    if (args.check) {
      const loaded = await loadConfigFile(configPath, process.env);
      const routes = await resolvePlugins(loaded);
      try {
        SessionSealer.fromConfig(loaded.config.sessions.key, loaded.config.sessions.previousKeys);
      } catch (err) {
        throw new ConfigError(loaded.source, [`sessions.key: ${(err as Error).message}`]);
      }
      const plugins = routes.reduce((n, r) => n + r.plugins.length, 0);
      process.stdout.write(`${configPath}: OK (${loaded.config.listeners.length} listeners, ${routes.length} routes, ${Object.keys(loaded.config.upstreams).length} upstreams, ${plugins} plugins)\n`);
      return 0;
    }
    const gw = await startGateway({ configPath });
    // A promise rejection nobody handled is a bug, but not one worth dropping every open stream for:
    // log it loudly and keep serving.
    process.on('unhandledRejection', (reason) => {
      gw.log.error({ err: reason }, 'unhandled promise rejection (a bug: please report it with this log line)');
    });
    return -1; // keep running
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') {
      process.stderr.write(`cannot listen: ${e.message}. Is another gateway running? Change the port in ${configPath}.\n`);
    } else {
      process.stderr.write(`the gateway failed to start: ${e.stack ?? e.message}\n`);
    }
    return 3;
  }
}

const code = await main();
if (code >= 0) process.exit(code);
