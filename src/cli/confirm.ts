/**
 * The yes/no prompt of commands that destroy data (`del --prefix`, `purge`): asked on stderr,
 * answered on stdin when both are terminals; without a terminal the command must be given
 * `--yes` (a usage error, exit 2), and any answer but y/yes does nothing (exit 2).
 */
import { createInterface } from 'node:readline/promises';
import { CliError } from './common.js';

/**
 * Asks `question` ("... ?") on the terminal; resolves on y/yes, otherwise throws a CliError
 * saying `nothing was ${undone}` ("deleted", "dropped").
 */
export async function confirm(question: string, undone: string): Promise<void> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new CliError(`${question.replace(/\?$/, '')}: standard input is not a terminal to confirm on; add --yes (nothing was ${undone})`, 'usage');
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await prompt.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new CliError(`nothing was ${undone}`, 'invalidArgument');
  } finally {
    prompt.close();
  }
}
