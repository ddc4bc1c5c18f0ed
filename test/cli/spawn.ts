/** Runs the built `glassbox` command as a user would, from the repository root. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `glassbox ...args` with a time limit (default 2 minutes). */
export function glassboxWithin(timeoutMs: number): (...args: string[]) => Result {
  return (...args) => {
    const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
}
