/**
 * `npm start [-- --config FILE] [-- --check]`: runs the gateway, or validates a config and exits.
 *
 * Exit codes: 0 ok, 1 invalid configuration, 2 usage error, 3 start-up failure (e.g. port in use).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/load.ts';
import { checkConfig } from './check.ts';
import { startGateway } from './gateway.ts';
import { stopWhenNpmParentExits } from './parent-watch.ts';
import { StdioConfigError } from './stdio/errors.ts';

const USAGE = `usage: npm start -- [--config gateway.yaml] [--check]
  --config FILE  the configuration to use (default ./gateway.yaml)
  --check        validate the configuration and exit: schema, references, plugin options, plugins
                 built (keys loaded), stdio commands found on PATH; binds no port, starts no process`;

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
      const s = await checkConfig(configPath, process.env, (line) => process.stderr.write(`warning: ${line}\n`));
      process.stdout.write(`${configPath}: OK (${s.listeners} listeners, ${s.routes} routes, ${s.upstreams} upstreams, ${s.plugins} plugins)\n`);
      return 0;
    }
    const gw = await startGateway({ configPath });
    // A promise rejection nobody handled is a bug, but not one worth dropping every open stream for:
    // log it loudly and keep serving.
    process.on('unhandledRejection', (reason) => {
      gw.log.error({ err: reason }, 'unhandled promise rejection (a bug: please report it with this log line)');
    });
    // `npm start`: stop with npm, which signals only the shell between it and us (parent-watch.ts).
    stopWhenNpmParentExits(() => {
      gw.log.info('the npm process that started the gateway is gone: shutting down');
      void gw.close().then(() => process.exit(0));
    });
    return -1; // keep running
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    // A stdio upstream refused while the runtime was built (command not found, unknown template).
    if (err instanceof StdioConfigError) {
      process.stderr.write(`${new ConfigError(configPath, [err.message]).message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') {
      process.stderr.write(`cannot listen: ${e.message}. Is another gateway running? Change the port in ${configPath}.\n`);
    } else {
      // One line an operator can act on; a stack trace would bury it.
      process.stderr.write(`the gateway failed to start: ${(e.message ?? String(err)).split("\n")[0]}\n`);
    }
    return 3;
  }
}

const code = await main();
if (code >= 0) process.exit(code);
