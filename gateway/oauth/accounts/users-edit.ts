/**
 * Editing a users file the way `npm run users` does: through the YAML document, so the operator's
 * comments and ordering survive, and written atomically with mode 0600.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { usersFileProblems, type UserEntry } from './users-schema.ts';

const HEADER =
  ' Accounts for the gateway\'s sign-in page (docs/oauth-accounts.md).\n' +
  ' Managed with: npm run users -- add|passwd|remove|list. Passwords are Argon2id hashes, never plaintext.';

export class UsersFileEditError extends Error {}

export interface UsersDocument {
  file: string;
  doc: Document;
  /** The problems the file had when read: an edit may leave them but must not add any. */
  problemsBefore: string[];
}

export async function openUsersFile(file: string): Promise<UsersDocument> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  const doc = parseDocument(text ?? '');
  if (text === undefined) doc.commentBefore = HEADER;
  if (doc.errors.length) {
    throw new UsersFileEditError(`${file} is not valid YAML (${doc.errors[0].message}); fix it by hand first`);
  }
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  if (!isMap(doc.contents)) throw new UsersFileEditError(`${file} should be a mapping with a "users:" key; fix it by hand first`);
  // `users:` with nothing after it is null: make it a mapping to add to.
  if (!isMap(doc.get('users'))) {
    if (doc.get('users') != null) throw new UsersFileEditError(`${file}: "users" should be a mapping of username to account`);
    doc.set('users', doc.createNode({}));
  }
  // Block style, one user after the other, whatever style the file started with (`users: {}`).
  const users = doc.get('users');
  if (isMap(users)) users.flow = false;
  return { file, doc, problemsBefore: text === undefined ? [] : usersFileProblems(text) };
}

export function usernames(d: UsersDocument): string[] {
  const users = d.doc.get('users');
  return isMap(users) ? users.items.map((p) => String((p.key as { value?: unknown })?.value ?? p.key)) : [];
}

export function hasUser(d: UsersDocument, username: string): boolean {
  return d.doc.hasIn(['users', username]);
}

export function setUser(d: UsersDocument, username: string, user: UserEntry): void {
  const plain: Record<string, unknown> = { password: user.password, tenant: user.tenant, scopes: user.scopes };
  if (user.name) plain.name = user.name;
  const node = d.doc.createNode(plain);
  // `scopes: [a, b]` on one line reads better than a block list.
  const scopes = node.get('scopes', true);
  if (isSeq(scopes)) scopes.flow = true;
  d.doc.setIn(['users', username], node);
}

export function setPassword(d: UsersDocument, username: string, hash: string): void {
  d.doc.setIn(['users', username, 'password'], hash);
}

export function removeUser(d: UsersDocument, username: string): void {
  d.doc.deleteIn(['users', username]);
}

/**
 * Checks that the edit added no problem, then writes: a temporary file in the same folder (mode 0600,
 * flushed to disk), renamed over the file. A reader (the gateway's watcher) sees the old file or the
 * new one, never half of one. Returns the problems left from before, for the caller to mention.
 */
export async function saveUsersFile(d: UsersDocument): Promise<string[]> {
  // lineWidth 0: a hash stays on one line instead of being folded.
  const text = d.doc.toString({ lineWidth: 0 });
  const after = usersFileProblems(text);
  const added = after.filter((p) => !d.problemsBefore.includes(p));
  if (added.length) throw new UsersFileEditError(`not saved, the result would be invalid: ${added.join('; ')}`);
  await mkdir(path.dirname(d.file), { recursive: true });
  const tmp = path.join(path.dirname(d.file), `.${path.basename(d.file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // open()'s mode is masked by the umask; 0600 is what we want whatever it is.
    await chmod(tmp, 0o600);
    await rename(tmp, d.file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return after;
}
