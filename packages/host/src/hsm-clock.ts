/**
 * The HSM's clock, as its host drives it: one tick every tickMs of wall-clock time since the HSM
 * process started, sent in Tick frames that may carry several ticks. Ticks are held back until the
 * tick the HSM's last Wake frame named (its next heartbeat or election timeout), or until the host
 * has another frame for the HSM, which they then precede. Before any Wake, and if the HSM's Wake
 * has passed, a tick goes every tick. An idle follower's HSM thus gets no Tick frame at all while
 * its leader's heartbeats arrive (each one comes with the ticks owed), and a leader's one per
 * heartbeat, instead of 20 a second each.
 *
 * The HSM sees the same ticks at the same moments whenever it acts on them: a Tick frame is sent by
 * the tick at which it would do something on its own, and before any frame it reads. The host is
 * the operator and controls this clock anyway: held-back ticks give it nothing it could not get by
 * delaying or dropping Tick frames, and the Wake tick tells it nothing it needs to know.
 */
import { MAX_TICKS_PER_FRAME } from "@bkv/wire";

const MAX_WAIT_MS = 60_000;

export interface ClockTimers {
  now: () => number;
  setTimeout: (f: () => void, ms: number) => unknown;
  clearTimeout: (t: unknown) => void;
}

const realTimers: ClockTimers = {
  now: () => performance.now(),
  setTimeout: (f, ms) => setTimeout(f, ms).unref(),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

export class HsmClock {
  private start = 0;
  /** Ticks sent to this HSM process since it started. */
  private sent = 0;
  /** The tick count by which the HSM wants its next Tick frame (1: every tick). */
  private wake = 1;
  private timer: unknown = null;
  private running = false;

  constructor(
    private readonly tickMs: number,
    /** Send a Tick frame of n ticks (n >= 1). */
    private readonly sendTicks: (n: number) => void,
    private readonly timers: ClockTimers = realTimers,
  ) {}

  /** A new HSM process started: its tick count starts at 0, a tick every tick until it says more. */
  restart(): void {
    this.stop();
    this.running = true;
    this.start = this.timers.now();
    this.sent = 0;
    this.wake = 1;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  /** The HSM's Wake frame: it needs no tick before its count reaches tick. */
  wakeAt(tick: number): void {
    if (!this.running) return;
    this.wake = tick;
    this.schedule();
  }

  /** Send the ticks owed so far, if any (before any other frame to the HSM). */
  flush(): void {
    if (!this.running) return;
    const owed = Math.floor((this.timers.now() - this.start) / this.tickMs) - this.sent;
    if (owed <= 0) return;
    const n = Math.min(owed, MAX_TICKS_PER_FRAME);
    this.sent += n;
    this.sendTicks(n);
  }

  private schedule(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    const at = Math.max(this.wake, this.sent + 1);
    // Capped (a timer cannot wait longer than 2^31 - 1 ms): at worst an early Tick frame, harmless.
    const delay = Math.min(MAX_WAIT_MS, Math.max(0, this.start + at * this.tickMs - this.timers.now()));
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.flush();
      if (this.running) this.schedule();
    }, delay);
  }
}
