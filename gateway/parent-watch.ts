/**
 * A gateway started by `npm start` stops when the process that started it is gone.
 *
 * npm runs a script as `sh -c "node gateway/main.ts"` and forwards SIGTERM and SIGINT to that shell
 * only. Debian's sh (dash) dies of the SIGTERM without passing it on, npm then exits, and the gateway
 * was left running with nobody to stop it, its ports still bound: `kill <npm pid>`, or a supervisor
 * stopping `npm start`, orphaned it.
 *
 * Why watch the parent instead of writing `exec node gateway/main.ts` in package.json:
 * - `exec` exists only where npm's script shell is POSIX; on Windows npm uses cmd.exe and the script
 *   would not even start;
 * - `exec` covers only what npm forwards (SIGTERM, SIGINT): npm dying of SIGHUP (its terminal closed)
 *   or any other way would still orphan the gateway;
 * - when `node` is a wrapper that spawns the real binary (some installs of the `node` package), the
 *   wrapper is what npm signals, and one that does not forward signals would orphan the gateway again.
 * Whatever sits between npm and the gateway, when the gateway's parent dies the gateway is
 * re-parented (to init or a subreaper), and this notices within a poll interval. (If npm itself is
 * SIGKILLed, the shell outlives it and stays the parent: nothing can notice that, short of watching
 * processes the gateway did not start.)
 *
 * Only for npm scripts (npm sets `npm_lifecycle_event`): a gateway started as `nohup node
 * gateway/main.ts &` is meant to outlive the shell that started it.
 */

export interface ParentWatchOptions {
  env?: NodeJS.ProcessEnv;
  intervalMs?: number;
  /** For tests; default `process.ppid` (read anew on each call). */
  parentPid?: () => number;
}

/** Calls `onGone` once when the parent process changes; returns a function that stops watching. */
export function stopWhenNpmParentExits(onGone: () => void, opts: ParentWatchOptions = {}): () => void {
  const env = opts.env ?? process.env;
  const parentPid = opts.parentPid ?? (() => process.ppid);
  const first = parentPid();
  // Already orphaned (or pid 1's child in a container): there is no parent to outlive.
  if (env.npm_lifecycle_event === undefined || first <= 1) return () => {};
  const timer = setInterval(() => {
    if (parentPid() === first) return;
    clearInterval(timer);
    onGone();
  }, opts.intervalMs ?? 500);
  // Never the reason the process stays alive: the listeners are.
  timer.unref();
  return () => clearInterval(timer);
}
