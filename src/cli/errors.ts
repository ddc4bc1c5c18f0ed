/** Errors the `glassbox` command reports as one line: usage errors exit 2, everything else 1. */

/** A mistake in how the command was called (unknown command or option, a missing argument): exit code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** The one-line message of anything thrown, without a stack. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
