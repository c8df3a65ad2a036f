/**
 * Reading the PIN: one line from stdin, or a prompt without echo when stdin is a terminal.
 * The PIN is never printed or logged.
 */
import { UsageError } from "./args.js";

async function readLineFromPipe(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if (Buffer.concat(chunks).includes(10)) break;
  }
  const text = Buffer.concat(chunks).toString("utf8");
  const nl = text.indexOf("\n");
  return (nl >= 0 ? text.slice(0, nl) : text).replace(/\r$/, "");
}

/** Typed ahead: what came after the line a prompt took, for the next prompt. */
let typedAhead = "";

/**
 * One line typed on the terminal, read in raw mode. echo: whether the typed characters are shown (a
 * question's answer) or not (a PIN, never shown).
 */
function promptTerminal(prompt: string, echo: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    // Echo off before the prompt shows: what is typed as soon as it appears is never echoed.
    stdin.setRawMode(true);
    process.stderr.write(prompt);
    let line = "";
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(line);
    };
    const take = (text: string) => {
      const chars = [...text];
      for (const [i, ch] of chars.entries()) {
        if (ch === "\r" || ch === "\n") {
          typedAhead = chars
            .slice(i + 1)
            .join("")
            .replace(/^\n/, "");
          return done();
        }
        if (ch === "\u0003") return done(new UsageError("cancelled"));
        if (ch === "\u007f" || ch === "\b") line = line.slice(0, -1);
        else {
          line += ch;
          if (echo) process.stderr.write(ch);
        }
      }
    };
    const onData = (d: Buffer) => take(d.toString("utf8"));
    stdin.on("data", onData);
    stdin.resume();
    const ahead = typedAhead;
    typedAhead = "";
    if (ahead !== "") take(ahead);
  });
}

/** A yes/no question on the terminal (stderr); only "y" or "yes" is yes. */
export async function askYesNo(question: string): Promise<boolean> {
  const answer = (await promptTerminal(`${question} [y/N] `, true)).trim().toLowerCase();
  return answer === "y" || answer === "yes";
}

/**
 * The PIN. confirm (a new PIN, as register sets): on a terminal it is asked twice and must match, so
 * a typo does not lock the key behind a PIN nobody knows. A pipe gives one line.
 */
export async function readPin(opts: { confirm?: boolean } = {}): Promise<string> {
  const tty = process.stdin.isTTY === true;
  const pin = tty
    ? await promptTerminal(opts.confirm === true ? "New PIN: " : "PIN: ", false)
    : await readLineFromPipe();
  if (pin.length < 4) throw new UsageError("the PIN must have at least 4 characters");
  if (pin.length > 128) throw new UsageError("the PIN must have at most 128 characters");
  if (tty && opts.confirm === true && (await promptTerminal("New PIN again: ", false)) !== pin) {
    throw new UsageError("the two PINs differ; nothing was sent");
  }
  return pin;
}
