/**
 * What a newcomer meets first, run as a user would (the built CLI, a real `bkv dev` fleet): the
 * dev subcommands find ./bkv-dev by default, speak in sentences (JSON with --json), say what is
 * missing; a fleet without a majority says so; a resumed folder refuses another guess limit.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bkv, type DevVault, startDev } from "./cli.js";

let cwd: string;
let dir: string;
let dev: DevVault;

beforeAll(async () => {
  cwd = mkdtempSync(join(tmpdir(), "bkv-newcomer-"));
  dir = join(cwd, "bkv-dev");
  dev = await startDev(dir, ["--nodes", "3", "--guess-limit", "3"]);
});

afterAll(async () => {
  await dev?.stop();
  rmSync(cwd, { recursive: true, force: true });
});

/** bkv run in the folder that holds ./bkv-dev, without --dir. */
const here = (args: string[], input?: string, env: Record<string, string> = {}) => bkv(args, input, env, cwd);

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function leaderUp(): Promise<boolean> {
  const r = await here(["dev", "status", "--json"]);
  const nodes = (JSON.parse(r.stdout) as { nodes: { role: string; status: string }[] }).nodes;
  return nodes.some((n) => n.role === "leader" && n.status === "ok");
}

describe("bkv dev, as a newcomer runs it", () => {
  it("says it is ready in one short human line on stderr, besides the JSON line on stdout", async () => {
    await until("the stderr ready line", async () => dev.stderr().includes("\n"));
    const line = dev.stderr().split("\n")[0]!;
    expect(line).toMatch(
      /^bkv dev: 3 nodes ready; demo page http:\/\/localhost:\d+; vault http:\/\/127\.0\.0\.1:\d+; folder /,
    );
    expect(line).toContain(dir);
    expect(line).toContain(String(dev.ready.web));
    expect(line.length).toBeLessThan(300);
    expect(dev.ready.web).toMatch(/^http:\/\/localhost:\d+$/);
  });

  it("dev status finds ./bkv-dev without --dir; --json names each node's number `node`", async () => {
    const text = await here(["dev", "status"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^node 1 /m);
    expect(text.stdout).toMatch(/^node 3 /m);
    const json = await here(["dev", "status", "--json"]);
    const s = JSON.parse(json.stdout) as { dir: string; nodes: { node: number; url: string }[] };
    expect(s.dir).toBe(dir);
    expect(s.nodes.map((n) => n.node)).toEqual([1, 2, 3]);
  });

  it("dev kill without --node says it is missing; out of range says so", async () => {
    const missing = await here(["dev", "kill"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("bkv dev: --node is required\n");
    const range = await here(["dev", "kill", "--node", "4"]);
    expect(range.code).toBe(1);
    expect(range.stderr).toContain("--node must be a whole number from 1 to 3");
  });

  it("a dev command on a folder without a fleet says so", async () => {
    const r = await bkv(["dev", "status", "--dir", join(cwd, "nothing-here")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/is 'bkv dev' running there\?/);
  });

  it("partition, heal, kill and start print sentences, and JSON only with --json", async () => {
    const p = await here(["dev", "partition", "--node", "3"]);
    expect(p).toMatchObject({ code: 0, stderr: "" });
    expect(p.stdout).toBe("cut off from the others: node 3; `bkv dev heal` undoes it\n");
    const pj = await here(["dev", "partition", "--node", "2", "--json"]);
    expect(JSON.parse(pj.stdout)).toEqual({ isolated: [3, 2] });
    const h = await here(["dev", "heal"]);
    expect(h.stdout).toBe("healed: no node is cut off\n");
    const hj = await here(["dev", "heal", "--json"]);
    expect(JSON.parse(hj.stdout)).toEqual({ isolated: [] });

    const k = await here(["dev", "kill", "--node", "3"]);
    expect(k).toMatchObject({ code: 0, stderr: "" });
    expect(k.stdout).toBe("killed node 3 (host and HSM); `bkv dev start --node 3` starts it again\n");
    const s = await here(["dev", "start", "--node", "3"]);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/^started node 3 \(host pid \d+\); it catches up from the leader\n$/);
    const kj = await here(["dev", "kill", "--node", "3", "--json"]);
    expect(JSON.parse(kj.stdout)).toEqual({ killed: 3 });
    const sj = await here(["dev", "start", "--node", "3", "--json"]);
    const started = JSON.parse(sj.stdout) as { started: number; hostPid: number };
    expect(started.started).toBe(3);
    expect(Number.isInteger(started.hostPid)).toBe(true);
    await until("a leader", leaderUp);
  });

  it("with 1 of 3 nodes up, recover says 'no majority: 1 of 3 nodes reachable' (exit 5)", async () => {
    const keyFile = join(cwd, "nm.key");
    expect((await here(["key", "new", "--out", keyFile])).code).toBe(0);
    expect(
      (await here(["vault", "register", "--dev", "bkv-dev", "--user", "nm", "--key", keyFile], "1357\n"))
        .code,
    ).toBe(0);
    for (const n of ["2", "3"]) expect((await here(["dev", "kill", "--node", n])).code).toBe(0);
    try {
      const r = await here(
        ["vault", "recover", "--dev", "bkv-dev", "--user", "nm", "--out", join(cwd, "nm2.key")],
        "1357\n",
      );
      expect(r.code).toBe(5);
      expect(r.stderr).toContain("no majority: 1 of 3 nodes reachable");
    } finally {
      for (const n of ["2", "3"]) expect((await here(["dev", "start", "--node", n])).code).toBe(0);
    }
    await until("a leader", leaderUp);
  });

  it("a resumed folder refuses another --guess-limit, as it refuses another --nodes", async () => {
    expect(await dev.stop()).toBe(0);
    for (const [flag, value, said] of [
      ["--guess-limit", "7", "guess limit of 3; it is fixed at genesis"],
      ["--nodes", "5", "holds a fleet of 3; membership is fixed at genesis"],
    ] as const) {
      const r = await bkv(["dev", "--dir", dir, "--port", "0", flag, value]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(said);
    }
    // The same guess limit, given again, is no error: the folder resumes.
    dev = await startDev(dir, ["--guess-limit", "3"]);
    expect(dev.ready.dir).toBe(dir);
  });
});
