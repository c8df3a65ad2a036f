/**
 * The stand-in for a user's cloud storage: one folder per user under DIR/storage, files written to
 * a temporary file and renamed into place when complete. The design treats this storage as
 * untrusted (it only ever holds ciphertext, the file's metadata and passkey wraps), but it still
 * serves a user's files to that user only (the web server checks the token).
 */
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, type ReadStream } from "node:fs";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

/** User names and file names: 1 to 64 of [A-Za-z0-9._-], never "." or "..". */
export const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const validName = (s: string): boolean => NAME_PATTERN.test(s) && s !== "." && s !== "..";

/** The largest file the storage takes. */
export const MAX_FILE_BYTES = 2 * 1024 ** 3;

export class TooLarge extends Error {}

export interface StoredFile {
  name: string;
  size: number;
}

export class FileStorage {
  private readonly root: string;
  private readonly tmp: string;

  constructor(dir: string) {
    this.root = join(dir, "storage");
    this.tmp = join(dir, "storage-tmp");
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    mkdirSync(this.tmp, { recursive: true, mode: 0o700 });
  }

  private path(user: string, name?: string): string {
    if (!validName(user) || (name !== undefined && !validName(name))) throw new Error("bad name");
    return name === undefined ? join(this.root, user) : join(this.root, user, name);
  }

  /** Stream body into user/name; at most `limit` bytes (TooLarge beyond), atomically replaced. */
  async put(user: string, name: string, body: Readable, limit = MAX_FILE_BYTES): Promise<number> {
    const target = this.path(user, name);
    const temp = join(this.tmp, `${randomBytes(12).toString("hex")}.part`);
    let size = 0;
    const out = createWriteStream(temp, { mode: 0o600, flush: true });
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            size += chunk.length;
            if (size > limit) throw new TooLarge(`larger than ${limit} bytes`);
            yield chunk;
          }
        },
        out,
      );
      mkdirSync(this.path(user), { recursive: true, mode: 0o700 });
      await rename(temp, target);
      return size;
    } catch (e) {
      // The pipeline may fail while the file is still being opened: removed before it exists, it
      // would appear afterwards and stay. Wait until the file is closed, then remove it.
      if (!out.closed) await new Promise<void>((resolve) => out.once("close", () => resolve()));
      await rm(temp, { force: true });
      throw e;
    }
  }

  /** The file's size and a stream of it, or null if there is none. */
  async get(user: string, name: string): Promise<{ size: number; stream: ReadStream } | null> {
    const p = this.path(user, name);
    try {
      const s = await stat(p);
      if (!s.isFile()) return null;
      return { size: s.size, stream: createReadStream(p) };
    } catch {
      return null;
    }
  }

  async list(user: string): Promise<StoredFile[]> {
    const dir = this.path(user);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    const out: StoredFile[] = [];
    for (const name of names.sort()) {
      if (!validName(name)) continue;
      try {
        const s = await stat(join(dir, name));
        if (s.isFile()) out.push({ name, size: s.size });
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  /** True if there was a file to delete. */
  async delete(user: string, name: string): Promise<boolean> {
    const p = this.path(user, name);
    try {
      if (!(await stat(p)).isFile()) return false;
    } catch {
      return false;
    }
    await rm(p, { force: true });
    return true;
  }
}
