/**
 * A CheckpointStore in a file: the largest checkpoint this device has seen, per log and namespace,
 * so a later run demands consistency with it (no rollback, no split view across runs).
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { BkvError, ErrorCode } from "@bkv/wire";
import type { CheckpointStore, SeenCheckpoint, TrustPins } from "../bundle/pins.js";

export function fileCheckpointStore(path: string): CheckpointStore {
  return {
    async load() {
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      }
      const v = JSON.parse(text) as Partial<SeenCheckpoint>;
      if (!Number.isSafeInteger(v.size) || typeof v.root !== "string")
        throw new BkvError(ErrorCode.Corrupt, `${path} does not hold a checkpoint`);
      return { size: v.size!, root: v.root };
    },
    async save(cp) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(`${path}.tmp`, `${JSON.stringify(cp)}\n`, { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    },
  };
}

/** Where this device keeps checkpoints: $BKV_STATE_DIR, else ~/.local/state/bkv. */
export function defaultCheckpointPath(pins: TrustPins): string {
  const dir = process.env.BKV_STATE_DIR ?? join(homedir(), ".local", "state", "bkv");
  const id = createHash("sha256").update(`${pins.logKey}\n${pins.namespace}`).digest("hex").slice(0, 16);
  return join(dir, `checkpoint-${id}.json`);
}
