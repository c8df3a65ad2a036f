/**
 * A CheckpointStore in a file: the largest checkpoint this device has seen, per log and namespace,
 * so a later run demands consistency with it (no rollback, no split view across runs). Saves are
 * compare-and-swap under a lock file (created exclusively), so two processes verifying at once
 * never replace a larger checkpoint with a smaller one. Beside it, a file of the artifacts whose
 * evidence this device has verified (one key per line), so the cost is paid once per epoch.
 */
import { createHash, randomBytes } from "node:crypto";
import { appendFile, mkdir, open, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { BkvError, ErrorCode } from "@bkv/wire";
import {
  type CheckpointStore,
  type SeenCheckpoint,
  sameCheckpoint,
  type TrustPins,
  type VerifiedArtifactCache,
} from "../bundle/pins.js";

/** A lock older than this is taken to belong to a process that died holding it. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 20_000;

async function readCheckpoint(path: string): Promise<SeenCheckpoint | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  let v: Partial<SeenCheckpoint>;
  try {
    v = JSON.parse(text) as Partial<SeenCheckpoint>;
  } catch {
    throw new BkvError(ErrorCode.Corrupt, `${path} does not hold a checkpoint`);
  }
  if (
    !Number.isSafeInteger(v.size) ||
    typeof v.root !== "string" ||
    (v.epoch !== undefined && !Number.isSafeInteger(v.epoch)) ||
    (v.artifact !== undefined && (typeof v.artifact !== "string" || !/^[0-9a-f]{64}$/.test(v.artifact)))
  )
    throw new BkvError(ErrorCode.Corrupt, `${path} does not hold a checkpoint`);
  const cp: SeenCheckpoint = { size: v.size!, root: v.root };
  if (v.epoch !== undefined) cp.epoch = v.epoch;
  if (v.artifact !== undefined) cp.artifact = v.artifact;
  return cp;
}

async function withLock<T>(lock: string, f: () => Promise<T>): Promise<T> {
  const start = Date.now();
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    try {
      const h = await open(lock, "wx", 0o600);
      await h.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      try {
        if (Date.now() - (await stat(lock)).mtimeMs > STALE_LOCK_MS) await unlink(lock);
      } catch {
        // gone meanwhile: try again
      }
      if (Date.now() - start > LOCK_WAIT_MS)
        throw new BkvError(ErrorCode.Unavailable, `${lock} is held by another process: try again`);
      await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    }
  }
  try {
    return await f();
  } finally {
    await unlink(lock).catch(() => {});
  }
}

/** Artifacts verified on this device, one key per line in `path`. */
export function fileVerifiedCache(path: string): VerifiedArtifactCache {
  return {
    async has(key) {
      try {
        return (await readFile(path, "utf8")).split("\n").includes(key);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
        throw e;
      }
    },
    async add(key) {
      if (!/^[0-9a-f]{64}$/.test(key))
        throw new BkvError(ErrorCode.Invalid, "a verified-artifact key is 64 hex digits");
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await appendFile(path, `${key}\n`, { mode: 0o600 });
    },
  };
}

export function fileCheckpointStore(path: string): CheckpointStore {
  return {
    load: () => readCheckpoint(path),
    async save(expected, next) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      return withLock(`${path}.lock`, async () => {
        if (!sameCheckpoint(await readCheckpoint(path), expected)) return false;
        const tmp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
        await writeFile(
          tmp,
          `${JSON.stringify({ size: next.size, root: next.root, epoch: next.epoch, artifact: next.artifact })}\n`,
          {
            mode: 0o600,
          },
        );
        await rename(tmp, path);
        return true;
      });
    },
    verified: fileVerifiedCache(path.replace(/\.json$/, "") + ".verified"),
  };
}

/** Where this device keeps checkpoints: $BKV_STATE_DIR, else ~/.local/state/bkv. */
export function defaultCheckpointPath(pins: TrustPins): string {
  const dir = process.env.BKV_STATE_DIR ?? join(homedir(), ".local", "state", "bkv");
  const id = createHash("sha256").update(`${pins.logKey}\n${pins.namespace}`).digest("hex").slice(0, 16);
  return join(dir, `checkpoint-${id}.json`);
}
