/**
 * The boot-time check of host storage against NVRAM: does the log the host handed back still hold
 * the tip this HSM recorded as durable (and so may have acknowledged)? Pure, so the core, the Raft
 * script tests and the simulator's invariants judge storage the same way.
 */
import { bytesEqual } from "@bkv/wire";
import { type LogTip, tipAtLeast } from "./nvram.js";
import type { LogRecord, SnapshotMeta } from "./raft.js";

export interface StorageVerdict {
  /**
   * How far the stored log counts as durable: the tip if storage holds it, else 0 (Raft persists
   * the stored snapshot and entries again before it acknowledges any of them).
   */
  durableIndex: number;
  /** The recover tip to keep in NVRAM: the old one, or the tip itself if storage was rolled back. */
  recover: LogTip | null;
  rolledBack: boolean;
}

export function checkStorage(
  nv: { tip: LogTip; recover: LogTip | null },
  snapshot: SnapshotMeta,
  log: readonly LogRecord[],
): StorageVerdict {
  const tip = nv.tip;
  const found = tip.index === snapshot.index ? snapshot.hash : log.find((r) => r.index === tip.index)?.hash;
  if (found !== undefined && bytesEqual(found, tip.hash)) {
    // Entries the host stored after the tip were never confirmed: Raft persists them again.
    return { durableIndex: tip.index, recover: nv.recover, rolledBack: false };
  }
  if (snapshot.index > tip.index || snapshot.term > tip.term) {
    // A leader's snapshot that the host stored but had not confirmed when the HSM stopped. It is
    // committed state that every committed entry this HSM acknowledged is part of: those lie at or
    // below the tip, so below a snapshot past it; and their terms are at most the tip's, lower than
    // the snapshot's last, so they come before it in the committed log.
    return { durableIndex: 0, recover: nv.recover, rolledBack: false };
  }
  // Rolled back: what this HSM acknowledged must be kept in NVRAM before anything else.
  const recover = nv.recover === null || tipAtLeast(tip, nv.recover) ? tip : nv.recover;
  return { durableIndex: 0, recover, rolledBack: true };
}
