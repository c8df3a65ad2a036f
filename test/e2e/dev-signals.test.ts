/**
 * `bkv dev` leaves nothing running behind: killed by any signal, orphaned by its parent, or failing
 * halfway through its start. Every process it starts names the folder in its arguments, so the
 * survivors are found by scanning /proc for it.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BKV, bkv, startDev } from "./cli.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const work = mkdtempSync(join(tmpdir(), "bkv-signals-"));

/** Processes (other than this one) whose command line names dir. */
function processesOf(dir: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(dir)) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Wait (a bounded number of times) until no process names dir; what is left. */
async function survivors(dir: string): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    if (processesOf(dir).length === 0) return [];
    await sleep(100);
  }
  return processesOf(dir);
}

const leftovers: string[] = [];
afterAll(() => {
  for (const dir of leftovers)
    for (const pid of processesOf(dir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
});

describe("bkv dev stops everything it started", () => {
  for (const signal of ["SIGHUP", "SIGTERM"] as const) {
    it(`when it gets ${signal}`, async () => {
      const dir = join(work, signal);
      leftovers.push(dir);
      const dev = await startDev(dir, ["--nodes", "1"]);
      // bkv dev, the host, its HSM, the log, the witnesses and the demo page.
      expect(processesOf(dir).length).toBeGreaterThanOrEqual(5);
      expect(await dev.stop(signal)).toBe(0);
      expect(dev.stderr()).toContain(`bkv dev: ${signal}: stopping the fleet`);
      expect(await survivors(dir)).toEqual([]);
    });
  }

  it("when its parent dies (npm does not pass signals on; a closed terminal's shell goes away)", async () => {
    const dir = join(work, "orphan");
    leftovers.push(dir);
    const shell = spawn(
      "sh",
      ["-c", `"${process.execPath}" "${BKV}" dev --dir "${dir}" --port 0 --nodes 1 & wait`],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    await new Promise<void>((resolve, reject) => {
      let out = "";
      shell.stdout.on("data", (d: Buffer) => {
        out += d.toString("utf8");
        if (out.includes("\n")) resolve();
      });
      shell.once("exit", (code) => reject(new Error(`sh exited with ${code} before bkv dev was ready`)));
    });
    const dev = processesOf(dir).find((pid) =>
      readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("dev"),
    );
    expect(dev).toBeDefined();
    shell.kill("SIGKILL");
    expect(await survivors(dir)).toEqual([]);
  });

  it("when a port is in use: named with its holder before the genesis ceremony, nothing left running", async () => {
    const dir = join(work, "busy");
    leftovers.push(dir);
    // Node 2's client port is taken: node 1's host and HSM are already running when the start fails.
    let base = 0;
    let blocker: Server | null = null;
    for (let tries = 0; tries < 20 && blocker === null; tries++) {
      base = 20_000 + Math.floor(Math.random() * 40_000);
      const s = createServer();
      blocker = await new Promise<Server | null>((resolve) => {
        s.once("error", () => resolve(null));
        s.listen(base + 1, "127.0.0.1", () => resolve(s));
      });
    }
    expect(blocker).not.toBeNull();
    try {
      const r = await bkv(["dev", "--dir", dir, "--port", String(base), "--nodes", "3"]);
      expect(r.code).toBe(1);
      // Named before anything starts: which listener, which port, who holds it, and the way out.
      expect(r.stderr).toContain(
        `node 2's client listener port ${base + 1} on 127.0.0.1 is in use by pid ${process.pid}`,
      );
      expect(r.stderr).toContain("--port 0 picks free ports");
      expect(existsSync(join(dir, "evidence.bin"))).toBe(false);
      expect(await survivors(dir)).toEqual([]);
    } finally {
      await new Promise((r) => blocker?.close(r));
    }
  });
});
