/**
 * One live process per HSM folder: HSM_DIR/hsm.lock, created with O_EXCL, names the pid of the
 * process that holds the folder (a running HSM process, or the provisioning tool while it works).
 * Another process that finds the lock held by a live pid waits a little (an HSM process that is
 * still exiting after its host died) and then refuses, so a process cannot keep the folder's keys in
 * memory while provisioning makes new ones, or a second HSM process run on the same keys and NVRAM.
 * A lock whose pid is dead (a process killed without cleaning up) is taken over.
 *
 * Within one process the lock is re-entrant (tests and the simulator open a folder again in the
 * same process; the HSM process itself builds one platform). It is released when the last holder
 * in this process releases it, and at process exit.
 *
 * This is a guard against mistakes and against an HSM process outliving its replacement, not a
 * boundary: the operator owns the disk and can delete the lock file (docs/platforms.md).
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { BkvError, ErrorCode } from "@bkv/wire";

export const LOCK_FILE = "hsm.lock";

/** Exit code of an HSM process whose folder another live process holds. */
export const EXIT_FOLDER_IN_USE = 73;

/** Folders this process holds, with how many holders. */
const held = new Map<string, number>();
let exitHook = false;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid named by a lock file, or null if it names none (being written, or damaged). */
function holderOf(path: string): number | null | "gone" {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "gone";
    throw e;
  }
  const m = /^pid (\d+)\n/.exec(text);
  return m === null ? null : Number(m[1]);
}

function releaseAtExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on("exit", () => {
    for (const path of held.keys()) removeIfOurs(path);
    held.clear();
  });
}

function removeIfOurs(path: string): void {
  try {
    if (holderOf(path) === process.pid) unlinkSync(path);
  } catch {
    // Already gone, or unreadable: nothing of ours to remove.
  }
}

export interface FolderLockOptions {
  /** How long to wait for a live holder to let go before refusing (default 2000 ms). */
  waitMs?: number;
}

/**
 * Hold HSM_DIR for this process; returns the release function. Throws BkvError UNAVAILABLE naming
 * the holder's pid if another live process holds the folder after waitMs.
 */
export function lockHsmFolder(dir: string, o: FolderLockOptions = {}): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(resolve(dir), LOCK_FILE);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    const n = (held.get(path) ?? 1) - 1;
    if (n > 0) {
      held.set(path, n);
      return;
    }
    held.delete(path);
    removeIfOurs(path);
  };
  const mine = held.get(path);
  if (mine !== undefined && holderOf(path) === process.pid) {
    held.set(path, mine + 1);
    return release;
  }
  const deadline = Date.now() + (o.waitMs ?? 2000);
  let unnamed = 0;
  for (;;) {
    try {
      const fd = openSync(path, "wx", 0o600);
      try {
        writeSync(fd, `pid ${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      held.set(path, 1);
      releaseAtExit();
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const pid = holderOf(path);
    if (pid === "gone") continue;
    if (pid === process.pid) {
      // Ours from an earlier holder in this process that never released (or a lock left by an
      // earlier process with our pid): this process holds it.
      held.set(path, (held.get(path) ?? 0) + 1);
      releaseAtExit();
      return release;
    }
    if (pid === null) {
      // Being written by its creator; a file that stays unnamed is damaged: take it over.
      if (++unnamed < 20) {
        sleepMs(50);
        continue;
      }
    } else if (alive(pid)) {
      if (Date.now() < deadline) {
        sleepMs(100);
        continue;
      }
      throw new BkvError(
        ErrorCode.Unavailable,
        `this HSM's folder ${resolve(dir)} is in use by process ${pid} (${path}): one process at a ` +
          "time runs or provisions an HSM; stop that process first",
      );
    }
    // The holder is gone: take the lock over. Another process may race us to it: O_EXCL decides who
    // creates the new lock, and the file is removed only while it still names the dead holder.
    try {
      if (holderOf(path) === pid) unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
}
