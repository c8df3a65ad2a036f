/**
 * `bkv key new`, `bkv backup` and `bkv restore`: make a backup key, encrypt a file into a backup
 * file, decrypt it back. Exit 0 with one line on stderr saying what was written, or 1 with a
 * one-line `bkv <command>: <message>` on stderr. Outputs appear only when complete (restores only once fully verified); an existing
 * output is replaced only with --force. A progress line goes to stderr when it is a terminal and
 * the input is large.
 */

import { stat } from "node:fs/promises";
import {
  decryptFile,
  encryptFile,
  type FileOptions,
  formatBackupKey,
  generateBackupKey,
} from "@bkv/client/node/backup";
import { ErrorCode, isBkvError } from "@bkv/wire";
import { parse, required, UsageError } from "../args.js";
import { fsReason, readKeyFile, writeKeyFile } from "../key-file.js";

const KEY_USAGE = "usage: bkv key new --out KEYFILE [--force]";
const BACKUP_USAGE = "usage: bkv backup --key KEYFILE [--force] IN OUT";
const RESTORE_USAGE = "usage: bkv restore --key KEYFILE [--force] IN OUT";

export async function keyCommand(argv: string[]): Promise<number> {
  return run("key", KEY_USAGE, async () => {
    const { values, positionals } = parse(argv, { out: { type: "string" }, force: { type: "boolean" } }, 1);
    if (positionals[0] !== "new") throw new UsageError(`unknown subcommand '${positionals[0]}'`);
    const out = required(values.out, "--out");
    const key = generateBackupKey();
    await writeKeyFile(out, key, { force: values.force === true });
    process.stdout.write(`${formatBackupKey(key)}\n`);
    process.stderr.write(
      `bkv key: wrote a new backup key to ${out}. Write down the recovery key printed above and keep it ` +
        "somewhere safe: without it or the key file, backups made with it cannot be restored.\n",
    );
  });
}

export async function backupCommand(argv: string[]): Promise<number> {
  return transfer("backup", BACKUP_USAGE, argv, encryptFile);
}

export async function restoreCommand(argv: string[]): Promise<number> {
  return transfer("restore", RESTORE_USAGE, argv, decryptFile);
}

type FileOp = (key: Uint8Array, inPath: string, outPath: string, opts: FileOptions) => Promise<unknown>;

async function transfer(name: string, usage: string, argv: string[], op: FileOp): Promise<number> {
  return run(name, usage, async () => {
    const { values, positionals } = parse(argv, { key: { type: "string" }, force: { type: "boolean" } }, 2);
    const keyPath = required(values.key, "--key");
    const [inPath, outPath] = positionals as [string, string];
    if (values.force !== true && (await exists(outPath))) {
      throw new Error(`${outPath} already exists; pass --force to replace it`);
    }
    const key = await readKeyFile(keyPath);
    const progress = new Progress(name);
    const ac = new AbortController();
    const interrupt = () => ac.abort(new Interrupted());
    process.on("SIGINT", interrupt);
    process.on("SIGTERM", interrupt);
    try {
      await op(key, inPath, outPath, {
        overwrite: values.force === true,
        signal: ac.signal,
        onProgress: (done, total) => progress.update(done, total),
      });
      progress.end();
      // One line on stderr (stdout stays empty for scripts): what was written where.
      const written = (await stat(outPath)).size;
      process.stderr.write(
        name === "backup"
          ? `bkv backup: encrypted ${inPath} into ${outPath} (${size(written)})\n`
          : `bkv restore: decrypted and verified ${inPath} into ${outPath} (${size(written)})\n`,
      );
    } catch (e) {
      progress.clear();
      if (isBkvError(e) && CONTENT_ERRORS.has(e.code)) {
        throw new Error(`${e.message}; ${outPath} was not written`, { cause: e });
      }
      throw e;
    } finally {
      process.off("SIGINT", interrupt);
      process.off("SIGTERM", interrupt);
      key.fill(0);
    }
  });
}

/** Errors about the backup's contents, after which the command says that no output was left. */
const CONTENT_ERRORS = new Set<ErrorCode>([
  ErrorCode.WrongKey,
  ErrorCode.Truncated,
  ErrorCode.Authentication,
  ErrorCode.Malformed,
]);

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (e: NodeJS.ErrnoException) => e.code !== "ENOENT",
  );
}

class Interrupted extends Error {
  constructor() {
    super("interrupted; no output was written");
  }
}

/** Runs a command body: exit 0, or 1 with `bkv <name>: <message>` on stderr. */
async function run(name: string, usage: string, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (e) {
    const text = e instanceof UsageError ? `${e.message}\n${usage}` : messageOf(e);
    process.stderr.write(`bkv ${name}: ${text}\n`);
    return 1;
  }
}

function messageOf(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (!isBkvError(e) && typeof err?.code === "string" && typeof err.path === "string") {
    return `${err.path}: ${fsReason(e)}`;
  }
  return e instanceof Error ? e.message : String(e);
}

const BIG_INPUT = 8 * 1024 * 1024;

/** A one-line progress bar on stderr: only on a terminal, only for inputs over 8 MiB. */
class Progress {
  private readonly start = performance.now();
  private last = 0;
  private shown = false;
  private done = 0;
  private total = 0;

  constructor(private readonly label: string) {}

  update(done: number, total: number): void {
    this.done = done;
    this.total = total;
    if (process.stderr.isTTY !== true || !(total > BIG_INPUT)) return;
    const now = performance.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    this.draw(now);
  }

  end(): void {
    if (!this.shown) return;
    this.draw(performance.now());
    process.stderr.write("\n");
    this.shown = false;
  }

  clear(): void {
    if (this.shown) process.stderr.write("\r\x1b[K");
    this.shown = false;
  }

  private draw(now: number): void {
    const pct = Math.min(100, Math.floor((100 * this.done) / this.total));
    const secs = Math.max((now - this.start) / 1000, 1e-3);
    const rate = this.done / 1e6 / secs;
    const width = 24;
    const fill = Math.round((pct / 100) * width);
    const bar = `${"#".repeat(fill)}${"-".repeat(width - fill)}`;
    process.stderr.write(
      `\r\x1b[K${this.label} [${bar}] ${String(pct).padStart(3)}%  ${size(this.done)} / ${size(this.total)}  ${rate.toFixed(1)} MB/s`,
    );
    this.shown = true;
  }
}

function size(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
