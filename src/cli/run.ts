/**
 * The attend CLI as a function: argv in, exit code out. Bad input (an unknown command, option or
 * task, a missing or damaged checkpoint, a prompt outside the vocabulary) is reported as one line
 * on stderr with exit code 2, never a stack trace. Set ATTEND_DEBUG=1 to see stacks.
 */
import { SafetensorsError } from "../io/safetensors.js";
import { AttendError } from "../tensor/errors.js";
import { UsageError } from "./args.js";
import { type Io, note, say } from "./io.js";
import { LESSON_HELP, lessonCommand } from "./lesson.js";
import { TRAIN_HELP, trainCommand } from "./train.js";
import { GENERATE_HELP, HEADS_HELP, generateCommand, headsCommand } from "./pretrained.js";
import { ATTN_MAP_HELP, EVAL_HELP, SAMPLE_HELP, attnMapCommand, evalCommand, sampleCommand } from "./inspect.js";

interface Command {
  summary: string;
  help: string;
  run: (args: string[], io: Io) => number | Promise<number>;
}

export const COMMANDS: Record<string, Command> = {
  "lookup-vs-soft": { summary: "lesson 1: a lookup table against softmax attention on associative recall", help: LESSON_HELP, run: lessonCommand },
  train: { summary: "train a model on a task (progress, validation, checkpoints, Ctrl-C to stop and save)", help: TRAIN_HELP, run: trainCommand },
  eval: { summary: "loss and accuracy of a checkpoint on its validation set", help: EVAL_HELP, run: evalCommand },
  sample: { summary: "let a checkpoint answer prompts (or make up names)", help: SAMPLE_HELP, run: sampleCommand },
  "attn-map": { summary: "draw a checkpoint's (or a Hugging Face model's) attention weights as an SVG or PNG heat map", help: ATTN_MAP_HELP, run: attnMapCommand },
  generate: { summary: "continue a prompt with a Hugging Face model folder (GPT-2, Llama, Mistral, Qwen2), streaming", help: GENERATE_HELP, run: generateCommand },
  heads: { summary: "per-head scores of a Hugging Face model: previous-token, induction, entropy, first-token", help: HEADS_HELP, run: headsCommand },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "attend: the attention mechanism of transformers, in TypeScript",
    "",
    "Usage: attend <command> [options]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    `  ${"help".padEnd(width)}  this list, or attend help <command> for one command`,
    "",
    "Every command takes --json (its last output line is one JSON object of results) and --help.",
    "Run attend <command> --help for its options.",
  ].join("\n");
}

/** Whether an error is the user's to fix (exit 2) rather than a bug. */
function isUserError(e: unknown): boolean {
  return e instanceof UsageError || e instanceof AttendError || e instanceof SafetensorsError;
}

function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\n\s*/g, " ").trim();
}

export async function runCli(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      const topic = name === "help" ? rest[0] : undefined;
      if (topic !== undefined && !(topic in COMMANDS)) throw new UsageError(`unknown command ${JSON.stringify(topic)} (commands: ${Object.keys(COMMANDS).join(", ")})`);
      say(io, topic !== undefined ? COMMANDS[topic].help : usage());
      return name === undefined ? 2 : 0;
    }
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (command === undefined) {
      throw new UsageError(`unknown command ${JSON.stringify(name)} (commands: ${Object.keys(COMMANDS).join(", ")}; see attend --help)`);
    }
    return await command.run(rest, io);
  } catch (e) {
    if (process.env.ATTEND_DEBUG) note(io, e instanceof Error && e.stack ? e.stack : String(e));
    if (isUserError(e)) {
      note(io, `attend: ${oneLine(e)}`);
      return 2;
    }
    note(io, `attend: internal error: ${oneLine(e)} (set ATTEND_DEBUG=1 for the stack trace)`);
    return 1;
  }
}
