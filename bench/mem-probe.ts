/**
 * Preloaded into a process under test (`node --expose-gc --import bench/mem-probe.ts ...`) so the
 * bench can read its memory from inside without touching its code: on SIGUSR2 the process collects
 * all the garbage it can and prints one line
 * `bench-mem {"rss":…,"heapUsed":…,"heapTotal":…,"external":…,"arrayBuffers":…,"gc":true}` on stdout.
 *
 * The collection is V8's "last resort" one (what it does under memory pressure): besides a full
 * mark-compact it shrinks the young generation and gives free pages back to the OS. A plain `gc()`
 * does not; after a burst of allocations (opening 2,000 streams in a few seconds) the young generation
 * stays grown by 50-150 MB, and RSS then measures that burst, not what the streams hold.
 *
 * Only the many-streams row loads it. A signal, not an IPC channel: an IPC channel would change the
 * process (process.send exists, the channel keeps a handle open) and this must not.
 */
type GcOptions = { type: 'major'; execution: 'sync'; flavor: 'last-resort' };
const gc = (globalThis as { gc?: (options?: GcOptions) => void }).gc;

function collect(): void {
  if (!gc) return;
  try {
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  } catch {
    // An older V8 without options: two full collections (the first may only schedule finalizers).
    gc();
    gc();
  }
}

process.on('SIGUSR2', () => {
  collect();
  const m = process.memoryUsage();
  const line = JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, gc: gc !== undefined });
  // One write of a short line to a pipe is atomic, so it never interleaves with the process's own logs.
  process.stdout.write(`bench-mem ${line}\n`);
});
