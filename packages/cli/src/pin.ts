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

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let pin = "";
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(pin);
    };
    const onData = (d: Buffer) => {
      for (const ch of d.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003") return done(new UsageError("cancelled"));
        if (ch === "\u007f" || ch === "\b") pin = pin.slice(0, -1);
        else pin += ch;
      }
    };
    stdin.on("data", onData);
  });
}

export async function readPin(): Promise<string> {
  const pin = process.stdin.isTTY ? await promptHidden("PIN: ") : await readLineFromPipe();
  if (pin.length < 4) throw new UsageError("the PIN must have at least 4 characters");
  if (pin.length > 128) throw new UsageError("the PIN must have at most 128 characters");
  return pin;
}
