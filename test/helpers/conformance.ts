/**
 * Runs the MCP conformance suite's server scenarios (`@modelcontextprotocol/conformance`, its CLI
 * `conformance server`) against a URL and reads back every check of every scenario.
 *
 * Invocation: `node <package>/dist/index.js server --url <url> --requirements <revision> -o <tmp dir>`
 * (or `--scenario <name> --spec-version <revision> --force` for one scenario at that revision's wire).
 * `--requirements` runs exactly the scenarios a spec revision requires, plus its `not_scored` ones
 * (extensions, pending), each at that revision's wire: 2025-11-25 stateful, 2026-07-28 stateless. The
 * CLI writes `<dir>/server-<scenario>-<timestamp>/checks.json` per scenario and prints a summary; both
 * are read, so a scenario that crashed before writing its file still shows up (as a failure).
 *
 * The CLI has no option to send an Authorization header. `authorization` adds one to every request it
 * makes, through a preload module (a `data:` URL given to `--import`): its HTTP goes through three
 * doors (global `fetch` and the SDK v1 client on it, undici's `request`, raw `node:http`), and the
 * preload covers all three: an undici global dispatcher with an interceptor (fetch and undici share
 * it) and a wrapper around `http.request`/`http.get`. A request that already carries the header keeps
 * its own. Nothing else about the requests changes.
 *
 * The suite needs no network beyond the URL it is given (its JSON schemas are bundled).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

const require = createRequire(import.meta.url);
const PACKAGE_DIR = path.dirname(require.resolve('@modelcontextprotocol/conformance/package.json'));
const CLI = path.join(PACKAGE_DIR, 'dist', 'index.js');

export type Revision = '2025-11-25' | '2026-07-28';
export type CheckStatus = 'SUCCESS' | 'FAILURE' | 'WARNING' | 'SKIPPED' | 'INFO';

export interface Check {
  id: string;
  name: string;
  description: string;
  status: CheckStatus;
  errorMessage?: string;
  details?: Record<string, unknown>;
}

export interface ConformanceRun {
  url: string;
  revision: Revision;
  exitCode: number | null;
  /** Checks per scenario, in the order the CLI ran them. */
  scenarios: Map<string, Check[]>;
  /** The CLI's stdout and stderr. */
  output: string;
  ms: number;
}

/** The scenarios of a requirement set, for the server leg: scored ones and those only run for visibility. */
export async function requirementSet(revision: Revision): Promise<{ scored: string[]; notScored: Array<{ scenario: string; reason: string }> }> {
  const doc = parseYaml(await readFile(path.join(PACKAGE_DIR, 'requirements', `${revision}.yaml`), 'utf8')) as {
    server: string[];
    not_scored?: Array<{ scenario: string; leg: string; reason: string }>;
  };
  return {
    scored: doc.server,
    notScored: (doc.not_scored ?? []).filter((e) => e.leg === 'server').map(({ scenario, reason }) => ({ scenario, reason })),
  };
}

/** Preload that adds `Authorization: <MCP_CONFORMANCE_TEST_AUTHORIZATION>` to the runner's requests. */
function authPreload(): string {
  const source = `
import http from 'node:http';
import { createRequire, syncBuiltinESMExports } from 'node:module';
const value = process.env.MCP_CONFORMANCE_TEST_AUTHORIZATION;
if (value) {
  const { Agent, setGlobalDispatcher } = createRequire(${JSON.stringify(CLI)})('undici');
  const has = (h) => {
    if (!h) return false;
    if (Array.isArray(h)) return h.some((e, i) => Array.isArray(e) ? String(e[0]).toLowerCase() === 'authorization' : i % 2 === 0 && String(e).toLowerCase() === 'authorization');
    if (typeof h[Symbol.iterator] === 'function' && typeof h !== 'string') return [...h].some(([k]) => String(k).toLowerCase() === 'authorization');
    return Object.keys(h).some((k) => k.toLowerCase() === 'authorization');
  };
  const add = (h) => {
    if (has(h)) return h;
    if (!h) return { authorization: value };
    if (Array.isArray(h)) return h.length > 0 && Array.isArray(h[0]) ? [...h, ['authorization', value]] : [...h, 'authorization', value];
    if (typeof h[Symbol.iterator] === 'function') return [...[...h].flat(), 'authorization', value];
    return { ...h, authorization: value };
  };
  setGlobalDispatcher(new Agent().compose((dispatch) => (opts, handler) => dispatch({ ...opts, headers: add(opts.headers) }, handler)));
  const wrap = (original) => function (...args) {
    const req = original.apply(this, args);
    try { if (!req.hasHeader('authorization')) req.setHeader('authorization', value); } catch {}
    return req;
  };
  http.request = wrap(http.request);
  http.get = function (...args) { const req = http.request(...args); req.end(); return req; };
  syncBuiltinESMExports();
}
`;
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

export interface RunOptions {
  url: string;
  revision: Revision;
  /** One scenario only (at the revision's wire) instead of the revision's requirement set. */
  scenario?: string;
  /** Sent as the `Authorization` header on every request the runner makes. */
  authorization?: string;
  /** Per-scenario timeout given to the CLI (its default is 30 s). */
  scenarioTimeoutMs?: number;
  /** Kill the CLI after this long (a hung run fails the test instead of the CI job). */
  killAfterMs?: number;
}

export async function runServerConformance(opts: RunOptions): Promise<ConformanceRun> {
  const outDir = await mkdtemp(path.join(tmpdir(), 'mcp-conformance-'));
  const selection = opts.scenario
    ? ['--scenario', opts.scenario, '--spec-version', opts.revision, '--force']
    : ['--requirements', opts.revision];
  const args = [
    ...(opts.authorization ? ['--import', authPreload()] : []),
    CLI, 'server', '--url', opts.url, ...selection, '-o', outDir,
    ...(opts.scenarioTimeoutMs ? ['--timeout', String(opts.scenarioTimeoutMs)] : []),
  ];
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  if (opts.authorization) env.MCP_CONFORMANCE_TEST_AUTHORIZATION = opts.authorization;
  const started = Date.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 240_000);
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  }).finally(() => clearTimeout(killer));
  try {
    const scenarios = await readResults(outDir, output);
    if (scenarios.size === 0) throw new Error(`the conformance CLI produced no results (exit ${exitCode}):\n${output.slice(-4000)}`);
    return { url: opts.url, revision: opts.revision, exitCode, scenarios, output, ms: Date.now() - started };
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

/** Reads every `checks.json`, then adds any scenario the summary names but no file holds. */
async function readResults(outDir: string, output: string): Promise<Map<string, Check[]>> {
  const found = new Map<string, Check[]>();
  const dirs = (await readdir(outDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  for (const dir of dirs) {
    const m = /^server-(.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/.exec(dir);
    if (!m) continue;
    const checks = JSON.parse(await readFile(path.join(outDir, dir, 'checks.json'), 'utf8')) as Check[];
    found.set(m[1], [...(found.get(m[1]) ?? []), ...checks]);
  }
  // The order the CLI ran them in, from its progress lines; a scenario that threw has no file.
  const ordered = new Map<string, Check[]>();
  for (const m of output.matchAll(/^=== Running scenario: (\S+) ===$/gm)) {
    ordered.set(m[1], found.get(m[1]) ?? [{
      id: m[1], name: m[1], description: 'Failed to run scenario', status: 'FAILURE',
      errorMessage: 'the scenario threw before writing its checks (see the CLI output)',
    }]);
  }
  // A single-scenario run prints no progress line.
  for (const [name, checks] of found) if (!ordered.has(name)) ordered.set(name, checks);
  return ordered;
}

/** The outcome of one check id in a scenario: ids may repeat, and repeats collapse most severe first. */
export interface Outcome {
  status: CheckStatus;
  /** The message and details of the occurrence that decided the status. */
  errorMessage?: string;
  details?: Record<string, unknown>;
  occurrences: number;
}

const SEVERITY: CheckStatus[] = ['FAILURE', 'WARNING', 'SUCCESS', 'INFO', 'SKIPPED'];

export function outcomesOf(checks: Check[]): Map<string, Outcome> {
  const out = new Map<string, Outcome>();
  for (const c of checks) {
    const prev = out.get(c.id);
    if (!prev) {
      out.set(c.id, { status: c.status, errorMessage: c.errorMessage, details: c.details, occurrences: 1 });
      continue;
    }
    prev.occurrences++;
    if (SEVERITY.indexOf(c.status) < SEVERITY.indexOf(prev.status)) {
      Object.assign(prev, { status: c.status, errorMessage: c.errorMessage, details: c.details });
    }
  }
  return out;
}

/** Check ids whose outcome differs between two runs of one scenario (absent on one side counts). */
export interface Difference {
  scenario: string;
  check: string;
  direct?: Outcome;
  via?: Outcome;
}

export function differences(scenario: string, direct: Check[] | undefined, via: Check[] | undefined): Difference[] {
  const a = outcomesOf(direct ?? []);
  const b = outcomesOf(via ?? []);
  const diffs: Difference[] = [];
  for (const check of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(check)?.status !== b.get(check)?.status) diffs.push({ scenario, check, direct: a.get(check), via: b.get(check) });
  }
  return diffs;
}

/** `SUCCESS`/`FAILURE`/… counts over every check of a run. */
export function tally(run: ConformanceRun): Record<CheckStatus, number> {
  const t: Record<CheckStatus, number> = { SUCCESS: 0, FAILURE: 0, WARNING: 0, SKIPPED: 0, INFO: 0 };
  for (const checks of run.scenarios.values()) for (const c of checks) t[c.status]++;
  return t;
}

/** One line per difference, for assertion messages and reports. */
export function explain(d: Difference): string {
  const side = (o?: Outcome) => (o ? `${o.status}${o.errorMessage ? ` (${o.errorMessage})` : ''}` : 'absent');
  return `${d.scenario} › ${d.check}: directly ${side(d.direct)}; through the gateway ${side(d.via)}`;
}
