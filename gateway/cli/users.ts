/**
 * `npm run users -- <command>`: manages the users file of the gateway's sign-in page.
 *
 *   add     <username> --tenant T [--scope S]… [--name "Full Name"] [--password-stdin]
 *   passwd  <username> [--password-stdin]
 *   remove  <username>
 *   list
 *
 * Every command takes [--file users.yaml] or [--config gateway.yaml]. The default file is the config's
 * `authorization.accounts.usersFile` (relative to the config), else users.yaml next to the config
 * (./gateway.yaml when there is one, else the current folder).
 *
 * The password is asked on the terminal without echo (twice), or read from stdin with
 * --password-stdin (`printf %s "$PW" | npm run -s users -- add …`); never from an argument, which `ps`
 * and shell history would show. A running gateway picks the change up by itself (it watches the file).
 * Exit codes as in the token CLI: 0 done, 1 failed, 2 usage.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { interpolate } from '../../config/load.ts';
import { hashPassword, MAX_PASSWORD_LENGTH } from '../oauth/accounts/password-hash.ts';
import {
  hasUser, openUsersFile, removeUser, saveUsersFile, setPassword, setUser, usernames, type UsersDocument,
} from '../oauth/accounts/users-edit.ts';
import { normalizeUsername, parseUsersFile, SCOPE_PATTERN, TENANT_PATTERN, USERNAME_PATTERN } from '../oauth/accounts/users-schema.ts';
import { promptHidden, readStdinPassword } from './read-password.ts';

/** NIST SP 800-63B's floor for a chosen password. */
const MIN_PASSWORD_LENGTH = 8;

class UsageError extends Error {}

const say = (line: string) => process.stderr.write(line + '\n');

const common = { file: { type: 'string' }, config: { type: 'string' } } as const;

/** The users file: --file, else the config's authorization.accounts.usersFile, else users.yaml beside it. */
async function usersFilePath(values: { file?: string; config?: string }): Promise<string> {
  if (values.file) return path.resolve(values.file);
  const config = values.config ?? (existsSync('gateway.yaml') ? 'gateway.yaml' : undefined);
  if (!config) return path.resolve('users.yaml');
  const text = await readFile(config, 'utf8').catch((err: Error) => {
    throw new Error(`cannot read ${config}: ${err.message}`);
  });
  // Only this one value is read, so the CLI works whatever state the rest of the config is in.
  const doc = parseDocument(text);
  if (doc.errors.length) throw new Error(`${config} is not valid YAML: ${doc.errors[0].message}`);
  const problems: string[] = [];
  const value = interpolate(doc.getIn(['authorization', 'accounts', 'usersFile']), process.env, problems);
  if (problems.length) throw new Error(`${config}: authorization.accounts.usersFile: ${problems.join('; ')}`);
  if (value !== undefined && value !== null && typeof value !== 'string') {
    throw new Error(`${config}: authorization.accounts.usersFile should be a file name`);
  }
  return path.resolve(path.dirname(config), value || 'users.yaml');
}

function username(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UsageError(`${command} needs one username`);
  const name = normalizeUsername(positionals[0]);
  if (!USERNAME_PATTERN.test(name)) {
    throw new UsageError(`"${positionals[0]}" is not a valid username: lower-case letters, digits and . _ @ + - (up to 128, starting with a letter or digit)`);
  }
  return name;
}

async function newPassword(fromStdin: boolean | undefined): Promise<string> {
  let password: string;
  if (fromStdin) {
    password = await readStdinPassword();
  } else {
    if (!process.stdin.isTTY) throw new UsageError('no terminal to ask for the password on: pipe it in with --password-stdin');
    password = await promptHidden('Password: ');
    if (password.length >= MIN_PASSWORD_LENGTH && (await promptHidden('Password (again): ')) !== password) {
      throw new Error('the passwords differ; nothing was changed');
    }
  }
  if (password.length < MIN_PASSWORD_LENGTH) throw new Error(`the password is shorter than ${MIN_PASSWORD_LENGTH} characters; nothing was changed`);
  if (password.length > MAX_PASSWORD_LENGTH) throw new Error(`the password is longer than ${MAX_PASSWORD_LENGTH} characters; nothing was changed`);
  return password;
}

async function save(d: UsersDocument, done: string): Promise<void> {
  const left = await saveUsersFile(d);
  say(`${done} (${d.file}, mode 0600). A running gateway picks the change up by itself.`);
  if (left.length) say(`The file still has problems the gateway refuses it for, from before this change:\n  - ${left.join('\n  - ')}`);
}

async function add(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true,
    options: { ...common, tenant: { type: 'string' }, scope: { type: 'string', multiple: true }, name: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
  });
  const user = username(positionals, 'add');
  if (!values.tenant) throw new UsageError('add needs --tenant');
  if (!TENANT_PATTERN.test(values.tenant)) throw new UsageError(`--tenant must match ${TENANT_PATTERN.source} (the gateway refuses anything else)`);
  const scopes = [...new Set((values.scope ?? []).flatMap((s) => s.split(/[\s,]+/)).filter(Boolean))];
  const bad = scopes.find((s) => !SCOPE_PATTERN.test(s));
  if (bad !== undefined) throw new UsageError(`--scope "${bad}" is not a valid scope (printable ASCII without quotes or backslashes)`);
  const name = values.name?.trim();
  const d = await openUsersFile(await usersFilePath(values));
  if (hasUser(d, user)) throw new Error(`${d.file} already has a user "${user}"; change the password with: npm run users -- passwd ${user}`);
  const password = await hashPassword(await newPassword(values['password-stdin']));
  setUser(d, user, { password, tenant: values.tenant, scopes, name: name || undefined });
  await save(d, `Added "${user}" (tenant ${values.tenant}${scopes.length ? `, scopes ${scopes.join(' ')}` : ''})`);
}

async function passwd(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...common, 'password-stdin': { type: 'boolean' } } });
  const user = username(positionals, 'passwd');
  const d = await openUsersFile(await usersFilePath(values));
  if (!hasUser(d, user)) throw new Error(`${d.file} has no user "${user}"; add one with: npm run users -- add ${user} --tenant <tenant>`);
  setPassword(d, user, await hashPassword(await newPassword(values['password-stdin'])));
  await save(d, `Changed the password of "${user}"`);
}

async function remove(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: common });
  const user = username(positionals, 'remove');
  const d = await openUsersFile(await usersFilePath(values));
  if (!hasUser(d, user)) throw new Error(`${d.file} has no user "${user}"`);
  removeUser(d, user);
  await save(d, `Removed "${user}" (tokens already issued to them stay valid until they expire or are revoked)`);
}

async function list(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: common });
  const file = await usersFilePath(values);
  if (!existsSync(file)) {
    say(`${file} does not exist yet; add a user with: npm run users -- add <username> --tenant <tenant>`);
    return 0;
  }
  const text = await readFile(file, 'utf8');
  let users: Array<[string, { tenant: string; scopes: string[]; name?: string }]>;
  try {
    users = Object.entries(parseUsersFile(text, file).users);
  } catch (err) {
    // Still list the names, so the operator sees what is there; the hashes are never printed.
    const d = await openUsersFile(file);
    say(`${(err as Error).message}`);
    say(`Users named in it: ${usernames(d).join(', ') || '(none)'}`);
    return 1;
  }
  if (users.length === 0) say(`${file} has no users.`);
  for (const [name, u] of users) {
    console.log([name, `tenant=${u.tenant}`, `scopes=${u.scopes.join(',') || '-'}`, u.name ? `name=${JSON.stringify(u.name)}` : ''].filter(Boolean).join('  '));
  }
  return 0;
}

const USAGE = `usage: npm run users -- <command> [--file users.yaml | --config gateway.yaml]
  add     <username> --tenant T [--scope S]... [--name "Full Name"] [--password-stdin]
  passwd  <username> [--password-stdin]
  remove  <username>
  list`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (rest.some((a) => a === '--password' || a.startsWith('--password='))) {
      throw new UsageError('a password is never taken as an argument (ps and shell history would show it): answer the prompt, or use --password-stdin');
    }
    switch (command) {
      case 'add': await add(rest); return 0;
      case 'passwd': await passwd(rest); return 0;
      case 'remove': await remove(rest); return 0;
      case 'list': return await list(rest);
      default:
        say(USAGE);
        return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ABORT_ERR') return 130;
    const usage = err instanceof UsageError || e.code?.startsWith('ERR_PARSE_ARGS');
    say(`users ${command}: ${e.message}`);
    if (usage) say(USAGE);
    return usage ? 2 : 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
