/** Parsing of the command line's values: `NAME=VALUE` pairs, shapes like `1x3x224x224`, unit lists like `3,7`. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Config<O extends Options> = { args: string[]; options: O; allowPositionals: true; strict: true };

/** `node:util` parseArgs with its errors turned into usage errors of `command`. */
export function parseCommand<O extends Options>(command: string, argv: string[], options: O): ReturnType<typeof parseArgs<Config<O>>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    // parseArgs messages end with a hint about '--' that does not apply here; keep the first sentence.
    const msg = (e as Error).message.split('. To specify')[0].split('\n')[0];
    throw new UsageError(msg, command);
  }
}

/** Splits `NAME=VALUE` at the first `=` (or the last, for values that cannot hold one); both sides non-empty. */
export function splitPair(flag: string, text: string, expected: string, at: 'first' | 'last' = 'first'): [string, string] {
  const i = at === 'first' ? text.indexOf('=') : text.lastIndexOf('=');
  if (i <= 0 || i === text.length - 1) throw new Error(`bad ${flag} '${text}': expected ${expected}`);
  return [text.slice(0, i), text.slice(i + 1)];
}

/** `1x3x224x224` (or `1,3,224,224`) → [1, 3, 224, 224]; every dim a non-negative integer. */
export function parseShape(flag: string, name: string, text: string): number[] {
  const parts = text.split(/[x,]/);
  if (parts.some((p) => !/^\d+$/.test(p))) {
    throw new Error(`bad shape '${text}' in ${flag} ${name}=${text}: expected dims like 1x3x224x224`);
  }
  return parts.map(Number);
}

/** `3,7` → [3, 7]; every unit a non-negative integer. */
export function parseUnits(flag: string, site: string, text: string): number[] {
  const parts = text.split(',');
  if (parts.some((p) => !/^\d+$/.test(p.trim()))) {
    throw new Error(`bad units '${text}' in ${flag} ${site}=${text}: expected unit indices like 3,7`);
  }
  return parts.map((p) => Number(p.trim()));
}
