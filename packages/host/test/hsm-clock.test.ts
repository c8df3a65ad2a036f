/**
 * The host's clock for its HSM (hsm-clock.ts), on a hand-driven clock: a Tick frame every tick
 * until the HSM names a Wake tick, then none until that tick (one frame with every tick owed), and
 * the ticks owed always go before any other frame, so the HSM reads each frame with its clock up to
 * date. The count follows wall-clock time: ticks are held back, never lost or invented.
 */
import { describe, expect, it } from "vitest";
import { type ClockTimers, HsmClock } from "../src/hsm-clock.js";

/** Timers on a clock moved by hand: advance(ms) fires what falls due, in order. */
function manualTimers(): ClockTimers & { advance: (ms: number) => void } {
  let now = 0;
  let timers: { at: number; f: () => void; id: number }[] = [];
  let nextId = 1;
  return {
    now: () => now,
    setTimeout: (f, ms) => {
      const t = { at: now + ms, f, id: nextId++ };
      timers.push(t);
      return t.id;
    },
    clearTimeout: (id) => {
      timers = timers.filter((t) => t.id !== id);
    },
    advance(ms: number) {
      const end = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at || a.id - b.id);
        const t = timers[0];
        if (t === undefined || t.at > end) break;
        timers.shift();
        now = Math.max(now, t.at);
        t.f();
      }
      now = end;
    },
  };
}

function clock() {
  const timers = manualTimers();
  const frames: number[] = [];
  const c = new HsmClock(50, (n) => frames.push(n), timers);
  return { c, timers, frames };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe("HsmClock", () => {
  it("sends a tick every tick until the HSM names a Wake tick", () => {
    const { c, timers, frames } = clock();
    c.restart();
    timers.advance(49);
    expect(frames).toEqual([]);
    timers.advance(1 + 4 * 50);
    expect(frames).toEqual([1, 1, 1, 1, 1]);
  });

  it("holds ticks back until the Wake tick, then sends them all in one frame", () => {
    const { c, timers, frames } = clock();
    c.restart();
    timers.advance(100); // ticks 1, 2
    c.wakeAt(12);
    timers.advance(9 * 50 + 49); // up to just before tick 12
    expect(frames).toEqual([1, 1]);
    timers.advance(1);
    expect(frames).toEqual([1, 1, 10]);
    // The Wake tick has passed and no new one came: a tick every tick again.
    timers.advance(50);
    expect(frames).toEqual([1, 1, 10, 1]);
  });

  it("sends the ticks owed before any other frame, and holds back the rest again", () => {
    const { c, timers, frames } = clock();
    c.restart();
    c.wakeAt(20);
    timers.advance(7 * 50 + 20);
    c.flush(); // the host has a frame for the HSM: the 7 ticks owed go first
    expect(frames).toEqual([7]);
    c.flush(); // nothing more is owed within the same tick
    expect(frames).toEqual([7]);
    timers.advance(13 * 50);
    expect(frames).toEqual([7, 13]);
    // Wall-clock time is never lost nor invented: 20 ticks in 1,000 ms.
    expect(sum(frames)).toBe(20);
  });

  it("counts from the HSM's start: a restarted HSM's count begins again, and a stale Wake is ignored after stop", () => {
    const { c, timers, frames } = clock();
    c.restart();
    c.wakeAt(100);
    timers.advance(30 * 50);
    c.stop();
    c.wakeAt(5);
    timers.advance(1000);
    expect(frames).toEqual([]);
    c.restart();
    timers.advance(50);
    expect(frames).toEqual([1]);
  });

  it("a Wake tick already passed, or far off, changes nothing the count follows", () => {
    const { c, timers, frames } = clock();
    c.restart();
    timers.advance(3 * 50);
    c.wakeAt(1); // already passed: next tick as usual
    timers.advance(50);
    expect(frames).toEqual([1, 1, 1, 1]);
    c.wakeAt(Number.MAX_SAFE_INTEGER); // the HSM never needs one: only frames carry ticks
    timers.advance(500);
    expect(frames).toEqual([1, 1, 1, 1]);
    c.flush();
    expect(frames).toEqual([1, 1, 1, 1, 10]);
  });
});
