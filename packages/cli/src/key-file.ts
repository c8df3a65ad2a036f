/**
 * Backup key files: the key in its written form (16 groups of 4 hex digits) and a newline, mode
 * 0600. Read by `backup`, `restore` and `vault register`; written by `key new` and `vault recover`.
 * Errors say which file and what is wrong, never what the file holds.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { formatBackupKey, parseBackupKey } from "@bkv/client/node/backup";
import { BkvError, ErrorCode, isBkvError } from "@bkv/wire";

/** Far more than a key with comments and line ends; anything bigger is not a key file. */
const MAX_KEY_FILE = 4096;

export async function readKeyFile(path: string): Promise<Uint8Array> {
  let text: string;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new BkvError(ErrorCode.Invalid, `key file ${path} is a folder`);
    if (st.size > MAX_KEY_FILE) {
      throw new BkvError(ErrorCode.Malformed, `key file ${path} is not a backup key file (${st.size} bytes)`);
    }
    text = await readFile(path, "utf8");
  } catch (e) {
    if (isBkvError(e)) throw e;
    throw new Error(`cannot read key file ${path}: ${fsReason(e)}`, { cause: e });
  }
  try {
    return parseBackupKey(text);
  } catch (e) {
    const why = e instanceof Error ? e.message.replace(/^not a backup key: /, "") : String(e);
    throw new BkvError(ErrorCode.Malformed, `key file ${path} does not hold a backup key: ${why}`, {
      cause: e,
    });
  }
}

/**
 * Writes `key` to `path` with mode 0600. Refuses to replace an existing file unless `force`; a
 * replacement is written beside it and renamed over it, so the old key is never half overwritten.
 */
export async function writeKeyFile(
  path: string,
  key: Uint8Array,
  opts: { force?: boolean } = {},
): Promise<void> {
  const text = `${formatBackupKey(key)}\n`;
  const target =
    opts.force === true
      ? join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`)
      : path;
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(target, "wx", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      throw new BkvError(ErrorCode.Invalid, `${path} already exists; pass --force to replace it`);
    }
    throw new Error(`cannot write key file ${path}: ${fsReason(e)}`, { cause: e });
  }
  try {
    try {
      await fh.writeFile(text, "utf8");
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (target !== path) await rename(target, path);
  } catch (e) {
    await rm(target, { force: true }).catch(() => undefined);
    throw new Error(`cannot write key file ${path}: ${fsReason(e)}`, { cause: e });
  }
}

/** A short reason for a file system error. */
export function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case "ENOENT":
      return "no such file or folder";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "it is a folder";
    case "ENOTDIR":
      return "a part of the path is not a folder";
    case "ENOSPC":
      return "no space left on the device";
    case "EROFS":
      return "read-only file system";
    default:
      return err instanceof Error ? err.message : String(e);
  }
}
