/**
 * Starts the real gateway in-process from a gateway.yaml text, on free ports, with its logs captured.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startGateway, type RunningGateway } from '../../gateway/gateway.ts';

export interface TestGateway {
  gw: RunningGateway;
  /** Folder holding the config file; relative paths in the YAML resolve against it. */
  dir: string;
  /** Base URL of a listener, e.g. `http://127.0.0.1:40123`. */
  url(listener?: string): string;
  /** Base URL of the admin listener. */
  adminUrl(): string;
  /** Every log line written so far (the audit plugin's lines included when its destination is stdout). */
  logs(): Array<Record<string, unknown>>;
  /** Raw log text, to assert that a secret never appears. */
  logText(): string;
  close(): Promise<void>;
}

/**
 * @param yaml gateway.yaml text. Listener ports should be 0; the admin listener is moved to port 0.
 * @param opts.env variables for `${ENV}` interpolation (process.env is not used unless passed).
 * @param opts.files extra files written into the config folder first (keys, JWKS, …).
 */
export async function startTestGateway(
  yaml: string,
  opts: { env?: Record<string, string | undefined>; files?: Record<string, string>; dir?: string } = {},
): Promise<TestGateway> {
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), 'mcpgw-test-')));
  for (const [name, text] of Object.entries(opts.files ?? {})) {
    await writeFile(path.join(dir, name), text);
  }
  const configPath = path.join(dir, 'gateway.yaml');
  await writeFile(configPath, yaml);
  let text = '';
  const sink = new Writable({
    write(chunk, _enc, cb) { text += chunk.toString(); cb(); },
  });
  const gw = await startGateway({
    configPath,
    env: { ...opts.env },
    logDestination: sink,
    overrides: { adminPort: 0 },
    installSignalHandlers: false,
  });
  return {
    gw,
    dir,
    url: (listener) => gw.listenerUrl(listener),
    adminUrl: () => gw.adminUrl(),
    logs: () => text.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return { raw: l }; } }),
    logText: () => text,
    close: () => gw.close(),
  };
}
