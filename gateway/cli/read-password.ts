/**
 * Reading a password for a CLI: from the terminal without echo, or from stdin for scripts.
 *
 * Never from an argument: arguments are visible to every local user in `ps` and land in shell history.
 */
import type { ReadStream } from 'node:tty';

/** Reads a line from the terminal with echo off. Ctrl-C rejects with code `ABORT_ERR`; Ctrl-D ends the line. */
export function promptHidden(prompt: string, input: ReadStream = process.stdin as ReadStream): Promise<string> {
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    const wasRaw = input.isRaw;
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    let value = '';
    const finish = (err?: Error) => {
      input.off('data', onData);
      input.setRawMode(wasRaw);
      input.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' }));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
        // Other control characters (arrow keys' escape sequences…) are not part of a password.
      }
    };
    input.on('data', onData);
  });
}

/** All of stdin, without the one line ending `echo` or a here-string adds. */
export async function readStdinPassword(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk;
  return text.replace(/\r?\n$/, '');
}
