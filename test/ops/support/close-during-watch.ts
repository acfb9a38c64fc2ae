/**
 * Run as a script: starts the gateway in process (config file watched), rewrites its config to listen on
 * another port, closes the gateway at once, and then expects the process to exit by itself. It prints
 * `closed <port>` once close() resolved; a hang means something (a debounced reload) outlived close().
 *
 * usage: node close-during-watch.ts <dir> <newPort>
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startGateway } from '../../../gateway/gateway.ts';

const [dir, newPort] = process.argv.slice(2);
const yaml = (port: number | string) => `
listeners: [{ name: main, port: ${port} }]
upstreams:
  nowhere: { url: http://127.0.0.1:9/mcp }
routes:
  - { listener: main, path: /mcp, upstream: nowhere }
admin: { enabled: false }
`;
const configPath = path.join(dir, 'gateway.yaml');
await writeFile(configPath, yaml(0));
const gw = await startGateway({
  configPath,
  env: {},
  logDestination: new Writable({ write(_c, _e, cb) { cb(); } }),
  installSignalHandlers: false,
});
await writeFile(configPath, yaml(newPort));
await gw.close();
process.stdout.write(`closed ${newPort}\n`);
