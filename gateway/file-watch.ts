/**
 * Watches files by watching their folders, for hot reload of gateway.yaml, plugin modules and TLS
 * certificates.
 *
 * The folder, not the file: editors, certbot, kubectl and config management save by writing a new file
 * and renaming it over the old one, and a watch on the old inode would never fire again. One save is
 * often several events (truncate, write, rename), so they are debounced into one call.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

export interface FileWatch {
  /** The files watched, absolute, sorted: compare it to decide whether to watch anew. */
  readonly files: readonly string[];
  close(): void;
}

export function watchFiles(
  files: readonly string[],
  onChange: () => void,
  opts: { debounceMs?: number; onError?(folder: string, err: Error): void } = {},
): FileWatch {
  const absolute = [...new Set(files.map((f) => path.resolve(f)))].sort();
  const byFolder = new Map<string, Set<string>>();
  for (const f of absolute) {
    const names = byFolder.get(path.dirname(f)) ?? new Set<string>();
    names.add(path.basename(f));
    byFolder.set(path.dirname(f), names);
  }
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  for (const [folder, names] of byFolder) {
    try {
      const w = watch(folder, (_event, name) => {
        // Some platforms give no name: then any change in the folder counts.
        if (closed || (name !== null && !names.has(name))) return;
        clearTimeout(timer);
        timer = setTimeout(() => { if (!closed) onChange(); }, opts.debounceMs ?? 300);
      });
      w.on('error', (err) => opts.onError?.(folder, err));
      // A watch never keeps the process alive: close() and signals decide when it ends.
      w.unref();
      watchers.push(w);
    } catch (err) {
      opts.onError?.(folder, err as Error);
    }
  }
  return {
    files: absolute,
    close() {
      closed = true;
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

export function sameFiles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((f, i) => f === b[i]);
}
