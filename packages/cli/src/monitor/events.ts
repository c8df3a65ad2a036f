/** What the monitor reports, one event per report (one JSON object each with --json). */
import type { FleetDiff, FleetView } from "./diff.js";
import type { CheckFailure, ReleaseView, ReusedMember } from "./entries.js";
import type { Consistency } from "./state.js";

export interface CheckpointEvent {
  readonly type: "checkpoint";
  readonly origin: string;
  readonly size: number;
  /** hex */
  readonly root: string;
  /** Witnesses whose cosignatures verified. */
  readonly cosigners: readonly string[];
  readonly threshold: number;
  readonly consistency: Consistency;
}

export interface FleetEvent {
  readonly type: "fleet";
  readonly index: number;
  readonly namespace: string | null;
  readonly epoch: number | null;
  /** Not covered by the checkpoint the monitor had seen before this run. */
  readonly new: boolean;
  readonly ok: boolean;
  readonly fleet: FleetView | null;
  /** A release entry (measurement, source revision, build recipe), not a fleet. */
  readonly release: ReleaseView | null;
  /** Against the previous epoch of the namespace; null for its first epoch. */
  readonly diff: FleetDiff | null;
  readonly passed: readonly string[];
  readonly skipped: readonly string[];
  readonly failures: readonly CheckFailure[];
  /**
   * Members of its genesis whose keys an earlier entry's fleet already has (members.fresh fails):
   * not new HSMs but cloned or rolled-back ones.
   */
  readonly reusedMembers: readonly ReusedMember[];
}

/** A failure outside any one entry: the checkpoint, its consistency, reading the tiles. */
export interface FailureEvent {
  readonly type: "failure";
  readonly check: string;
  readonly message: string;
}

export interface NoteEvent {
  readonly type: "note";
  readonly message: string;
}

export interface NamedFailure extends CheckFailure {
  /** The log index of the entry, for entry checks. */
  readonly index?: number;
}

export interface SummaryEvent {
  readonly type: "summary";
  readonly ok: boolean;
  readonly origin: string | null;
  readonly size: number;
  readonly entries: number;
  readonly newEntries: number;
  readonly vendorRootChecked: boolean;
  /** The state file written, if it was (only when every check held). */
  readonly stateSaved: string | null;
  readonly failures: readonly NamedFailure[];
}

export type MonitorEvent = CheckpointEvent | FleetEvent | FailureEvent | NoteEvent | SummaryEvent;
