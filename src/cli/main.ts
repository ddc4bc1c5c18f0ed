#!/usr/bin/env node
/**
 * The `glassbox` command. Subcommands are a table; every error ends as one line `glassbox: <message>` on stderr,
 * exit code 2 for usage errors (unknown command or option, missing argument) and 1 for everything else.
 */
import { messageOf, UsageError } from './errors.js';
import { isTopic, packageVersion, USAGE } from './help.js';
import { explain } from './explain.js';
import { inspect } from './inspect.js';
import { methods } from './methods.js';
import { neurons } from './neurons.js';
import { circuit } from './circuit.js';
import { counterfactual } from './counterfactual.js';
import { anchor } from './anchor.js';
import { rules } from './rules.js';
import { tcav } from './tcav.js';
import { probe } from './probe.js';
import { similarity } from './similarity.js';
import { sae } from './sae.js';
import { attention } from './attention.js';
import { influence } from './influence.js';
import { run } from './run.js';
import { train } from './train.js';
import { tour } from './tour.js';

const COMMANDS = {
  inspect,
  run,
  train,
  explain,
  methods,
  neurons,
  circuit,
  counterfactual,
  anchor,
  rules,
  tcav,
  probe,
  similarity,
  sae,
  attention,
  influence,
  tour: async (argv: string[]) => {
    if (argv.length > 0) throw new UsageError(`tour takes no arguments, got ${argv.join(' ')}`, 'tour');
    await tour();
  },
} satisfies Record<string, (argv: string[]) => Promise<void>>;

const isCommand = (s: string): s is keyof typeof COMMANDS => Object.hasOwn(COMMANDS, s);

function help(topic: string | undefined): void {
  if (topic !== undefined && !isTopic(topic)) throw new UsageError(`no help for '${topic}'`);
  console.log(USAGE[topic ?? 'main']);
}

async function main(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === undefined) return tour();
  if (first === '--version' || first === '-v') return void console.log(await packageVersion());
  if (first === 'help' || first === '--help' || first === '-h') return help(rest[0]);
  if (!isCommand(first)) throw new UsageError(`unknown command '${first}'`);
  if (rest.includes('--help') || rest.includes('-h')) return help(first);
  await COMMANDS[first](rest);
}

function fail(e: unknown): void {
  if (e instanceof UsageError) {
    const more = e.command ? `glassbox help ${e.command}` : 'glassbox help';
    process.stderr.write(`glassbox: ${e.message}\n(see '${more}')\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`glassbox: ${messageOf(e)}\n`);
    process.exitCode = 1;
  }
}

// A reader that stops early (`glassbox inspect big.onnx | head`) is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit();
  else fail(e);
});

// Errors thrown outside the awaited chain (a stray rejection inside a runtime callback) still end as one line.
process.on('uncaughtException', (e) => {
  fail(e);
  process.exit();
});
process.on('unhandledRejection', (e) => {
  fail(e);
  process.exit();
});

main(process.argv.slice(2)).catch(fail);
