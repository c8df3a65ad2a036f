/**
 * What a newcomer meets first, run as a user would (the built CLI, a real `bkv dev` fleet): the
 * dev subcommands find ./bkv-dev by default, speak in sentences (JSON with --json), say what is
 * missing; a fleet without a majority says so; a resumed folder refuses another guess limit.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BKV, bkv, type DevVault, type RunResult, STATE_DIR, startDev } from "./cli.js";

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

/** The fields the README's JSON table documents for a command (its `fields` column, in backticks). */
function documentedFields(command: string): string[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const cell = command.startsWith("`") ? command : `\`${command}\``;
  const row = readme.split("\n").find((l) => l.startsWith(`| ${cell} |`));
  expect(row, command).toBeDefined();
  const fields = row!.split(" | ")[1]!;
  return [...fields.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]!);
}

/** Every key of a --json object is one the README documents for its command. */
function expectDocumented(command: string, obj: Record<string, unknown>): void {
  const documented = documentedFields(command);
  expect(
    Object.keys(obj).filter((k) => !documented.includes(k)),
    command,
  ).toEqual([]);
}

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
    expectDocumented("dev status", s);
    for (const n of ["node", "url", "status", "role", "hostPid", "hsmPid"])
      expect(documentedFields("dev status")).toContain(n);
    expectDocumented("`dev` (ready line, always JSON)", dev.ready);
    for (const n of s.nodes)
      expect(Object.keys(n)).toEqual(expect.arrayContaining(["node", "url", "status"]));
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
    expectDocumented("`dev partition`, `dev heal`", JSON.parse(pj.stdout));
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
    expectDocumented("dev kill", JSON.parse(kj.stdout));
    const sj = await here(["dev", "start", "--node", "3", "--json"]);
    const started = JSON.parse(sj.stdout) as { started: number; hostPid: number };
    expect(started.started).toBe(3);
    expectDocumented("dev start", started);
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

/**
 * bkv on a terminal: run under `script`, which gives it a pseudo-terminal. Each answer is typed
 * once the prompt before it has appeared.
 */
function onTerminal(args: string[], answers: { after: string; type: string }[]): Promise<RunResult> {
  const command = [process.execPath, BKV, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      cwd,
      env: { ...process.env, BKV_STATE_DIR: STATE_DIR },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let next = 0;
    let from = 0;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      for (;;) {
        const answer = answers[next];
        const at = answer === undefined ? -1 : out.indexOf(answer.after, from);
        if (answer === undefined || at < 0) break;
        child.stdin.write(answer.type);
        from = at + answer.after.length;
        next++;
      }
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout: out, stderr: "" }));
  });
}

describe("the vault commands, as a newcomer runs them", () => {
  it("register on a terminal asks the PIN twice; two different PINs send nothing", async () => {
    const keyFile = join(cwd, "tty.key");
    expect((await here(["key", "new", "--out", keyFile])).code).toBe(0);
    const args = ["vault", "register", "--dev", "bkv-dev", "--user", "tty", "--key", keyFile];
    const differ = await onTerminal(args, [
      { after: "New PIN: ", type: "2468\r" },
      { after: "New PIN again: ", type: "2486\r" },
    ]);
    expect(differ.code).toBe(1);
    expect(differ.stdout).toContain("the two PINs differ; nothing was sent");
    expect(differ.stdout).not.toContain("2468");
    const gone = await here(
      ["vault", "recover", "--dev", "bkv-dev", "--user", "tty", "--out", join(cwd, "t.key")],
      "2468\n",
    );
    expect(gone.code).toBe(4);

    const same = await onTerminal(args, [
      { after: "New PIN: ", type: "2468\r" },
      { after: "New PIN again: ", type: "2468\r" },
    ]);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain("registered: the backup key of tty is protected by the PIN");
    expect(same.stdout).not.toContain("2468");
    // Both lines typed ahead in one go still count as the two answers.
    const ahead = await onTerminal(
      [...args.slice(0, 5), "tty2", ...args.slice(6)],
      [{ after: "New PIN: ", type: "1357\r1357\r" }],
    );
    expect(ahead.code).toBe(0);
    const recovered = await onTerminal(
      ["vault", "recover", "--dev", "bkv-dev", "--user", "tty", "--out", join(cwd, "t2.key")],
      [{ after: "PIN: ", type: "2468\r" }],
    );
    expect(recovered.code).toBe(0);
    expect(readFileSync(join(cwd, "t2.key"))).toEqual(readFileSync(keyFile));
  });

  it("takes the bearer token from --token-file or BKV_TOKEN, and says which are missing", async () => {
    const keyFile = join(cwd, "tok.key");
    expect((await here(["key", "new", "--out", keyFile])).code).toBe(0);
    expect(
      (await here(["vault", "register", "--dev", "bkv-dev", "--user", "tok", "--key", keyFile], "1122\n"))
        .code,
    ).toBe(0);
    const token = (await here(["dev", "token", "--user", "tok"])).stdout.trim();
    const tokenFile = join(cwd, "tok.token");
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const base = [
      "vault",
      "recover",
      "--vault",
      dev.url,
      "--trust",
      join(dir, "trust.json"),
      "--user",
      "tok",
    ];
    const fromFile = await here(
      [...base, "--token-file", tokenFile, "--out", join(cwd, "tok1.key")],
      "1122\n",
    );
    expect(fromFile.stderr).toBe("");
    expect(fromFile.code).toBe(0);
    const fromEnv = await here([...base, "--out", join(cwd, "tok2.key")], "1122\n", { BKV_TOKEN: token });
    expect(fromEnv.code).toBe(0);
    expect(readFileSync(join(cwd, "tok2.key"))).toEqual(readFileSync(keyFile));
    const none = await here([...base, "--out", join(cwd, "tok3.key")], "1122\n", { BKV_TOKEN: "" });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(
      "a bearer token is required: --token-file FILE, the BKV_TOKEN variable, or --token",
    );
    const missingFile = await here(
      [...base, "--token-file", join(cwd, "no-such.token"), "--out", join(cwd, "tok4.key")],
      "1122\n",
    );
    expect(missingFile.code).toBe(1);
    expect(missingFile.stderr).toContain("cannot read the token file");
    expect(existsSync(join(cwd, "tok3.key")) || existsSync(join(cwd, "tok4.key"))).toBe(false);
  });
});

describe("registering again", () => {
  it("replaces a record only with --replace; elsewhere it changes nothing and says how", async () => {
    const [k1, k2] = [join(cwd, "rep1.key"), join(cwd, "rep2.key")];
    for (const k of [k1, k2]) expect((await here(["key", "new", "--out", k])).code).toBe(0);
    const reg = (key: string, pin: string, extra: string[] = []) =>
      here(["vault", "register", "--dev", "bkv-dev", "--user", "rep", "--key", key, ...extra], `${pin}\n`);
    const recover = async (pin: string, out: string) =>
      here(["vault", "recover", "--dev", "bkv-dev", "--user", "rep", "--out", out], `${pin}\n`);
    expect((await reg(k1, "1111")).code).toBe(0);
    const again = await reg(k2, "2222");
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(
      "bkv vault register: this user already has a record in the vault; nothing was changed. Pass --replace to replace it",
    );
    const json = await reg(k2, "2222", ["--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, error: "RECORD_EXISTS" });
    expectDocumented("vault register\\|recover\\|delete", JSON.parse(json.stdout));
    // The old PIN still recovers the old key.
    expect((await recover("1111", join(cwd, "rep-a.key"))).code).toBe(0);
    expect(readFileSync(join(cwd, "rep-a.key"))).toEqual(readFileSync(k1));

    expect((await reg(k2, "2222", ["--replace"])).code).toBe(0);
    expect((await recover("1111", join(cwd, "rep-b.key"))).code).toBe(3);
    expect((await recover("2222", join(cwd, "rep-c.key"))).code).toBe(0);
    expect(readFileSync(join(cwd, "rep-c.key"))).toEqual(readFileSync(k2));
  });

  it("on a terminal, asks before it replaces a record; no keeps it", async () => {
    const [k1, k2] = [join(cwd, "ask1.key"), join(cwd, "ask2.key")];
    for (const k of [k1, k2]) expect((await here(["key", "new", "--out", k])).code).toBe(0);
    const args = (key: string) => ["vault", "register", "--dev", "bkv-dev", "--user", "ask", "--key", key];
    expect((await here(args(k1), "1111\n")).code).toBe(0);
    const pins = [
      { after: "New PIN: ", type: "2222\r" },
      { after: "New PIN again: ", type: "2222\r" },
    ];
    const no = await onTerminal(args(k2), [...pins, { after: "Replace it?", type: "n\r" }]);
    expect(no.code).toBe(1);
    expect(no.stdout).toContain("ask already has a record in the vault. Replace it?");
    expect(no.stdout).toContain("ask's record is kept; nothing was changed");
    const yes = await onTerminal(args(k2), [...pins, { after: "Replace it?", type: "y\r" }]);
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain("registered: the backup key of ask is protected by the PIN");
    const r = await here(
      ["vault", "recover", "--dev", "bkv-dev", "--user", "ask", "--out", join(cwd, "ask-r.key")],
      "2222\n",
    );
    expect(r.code).toBe(0);
    expect(readFileSync(join(cwd, "ask-r.key"))).toEqual(readFileSync(k2));
  });
});
