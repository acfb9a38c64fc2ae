/**
 * Password accounts from a users file (format in users-schema.ts), re-read when the file changes.
 *
 * A new version that fails to read or validate is logged and ignored: the accounts already loaded stay
 * in force, so a half-finished edit never locks everybody out (nor lets anybody in). Deleting the file
 * is treated the same way; to remove every user, write `users: {}`.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { watchFiles, type FileWatch } from '../../file-watch.ts';
import type { Account, PasswordAccounts } from '../contracts.ts';
import { dummyHash, verifyPassword } from './password-hash.ts';
import { normalizeUsername, parseUsersFile, USERNAME_PATTERN } from './users-schema.ts';

interface Entry {
  hash: string;
  account: Account;
}

export interface UsersFileAccounts extends PasswordAccounts {
  /** How many users the file in force has. */
  readonly size: number;
  /** Re-reads the file now (the watcher calls this); resolves false when the new file was refused. */
  reload(): Promise<boolean>;
  /** Stops watching the file. */
  close(): Promise<void>;
}

export interface LoadOptions {
  /** Watch the file's folder and reload on change. Default true. */
  watch?: boolean;
  /** Debounce of change events. Default 300ms (gateway/file-watch.ts). */
  debounceMs?: number;
  /**
   * A file that does not exist yet means no accounts (with a warning saying how to add one), and is
   * picked up when it is created. The gateway's default config turns sign-in on before anyone has run
   * `npm run users -- add`: the first start must not fail for that. Default false.
   */
  allowMissing?: boolean;
}

async function readEntries(file: string, log: Logger): Promise<Map<string, Entry>> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      throw new Error(`${file}: no such file; create it with: npm run users -- add <username> --tenant <tenant> --file ${file}`);
    }
    throw new Error(`${file}: ${err.message}`);
  });
  await warnIfShared(file, log);
  const parsed = parseUsersFile(text, file);
  const entries = new Map<string, Entry>();
  for (const [username, user] of Object.entries(parsed.users)) {
    entries.set(username, {
      hash: user.password,
      account: { subject: username, tenant: user.tenant, scopes: user.scopes, displayName: user.name, source: 'users-file' },
    });
  }
  return entries;
}

/** Hashes resist guessing, but not forever: other local users have no business reading them. */
async function warnIfShared(file: string, log: Logger): Promise<void> {
  if (process.platform === 'win32') return;
  const { mode } = await stat(file);
  if ((mode & 0o077) !== 0) {
    log.warn({ file, mode: (mode & 0o777).toString(8) },
      `users file is readable or writable by other local users; restrict it with: chmod 600 ${file}`);
  }
}

export async function loadPasswordAccounts(file: string, log: Logger, opts: LoadOptions = {}): Promise<UsersFileAccounts> {
  const absolute = path.resolve(file);
  let entries: Map<string, Entry>;
  try {
    entries = await readEntries(absolute, log);
    log.info({ file: absolute, users: entries.size }, 'users file loaded');
  } catch (err) {
    if (!opts.allowMissing || !/: no such file;/.test((err as Error).message)) throw err;
    entries = new Map();
    log.warn({ file: absolute }, `no users file yet, so nobody can sign in; add the first account with: npm run users -- add <username> --tenant <tenant> (it is picked up without a restart)`);
  }
  // Pay for the dummy hash now rather than on the first unknown username.
  void dummyHash();

  // Reloads run one at a time, in order: a burst of saves cannot apply an older version last.
  let chain: Promise<boolean> = Promise.resolve(true);
  const reload = (): Promise<boolean> => {
    chain = chain.then(async () => {
      try {
        entries = await readEntries(absolute, log);
        log.info({ file: absolute, users: entries.size }, 'users file reloaded');
        return true;
      } catch (err) {
        log.error({ file: absolute, err: (err as Error).message }, 'users file not reloaded; the previous accounts stay in force');
        return false;
      }
    });
    return chain;
  };

  let watching: FileWatch | undefined;
  if (opts.watch ?? true) {
    watching = watchFiles([absolute], () => void reload(), {
      debounceMs: opts.debounceMs,
      onError: (folder, err) => log.warn({ folder, err: err.message }, 'cannot watch the users file; changes need a gateway reload'),
    });
  }

  return {
    get size() { return entries.size; },
    reload,
    async verify(username: string, password: string): Promise<Account | undefined> {
      const name = normalizeUsername(username);
      // Read the entry before awaiting: a reload during verification does not mix two versions.
      const entry = USERNAME_PATTERN.test(name) ? entries.get(name) : undefined;
      if (!entry) {
        await verifyPassword(await dummyHash(), password);
        return undefined;
      }
      return (await verifyPassword(entry.hash, password)) ? { ...entry.account, scopes: [...entry.account.scopes] } : undefined;
    },
    async close(): Promise<void> {
      watching?.close();
      watching = undefined;
      await chain;
    },
  };
}
