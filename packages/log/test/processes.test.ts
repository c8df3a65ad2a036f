/**
 * The real processes: `node packages/log/dist/log-main.js` and `witness-main.js` on 127.0.0.1
 * ephemeral ports, their ready lines, appends cosigned across processes, and both processes
 * restarted on their folders: same keys, same checkpoint, the witness remembers its size, and
 * appends go on.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  openCosignedCheckpoint,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  verifyLogBundle,
} from "@bkv/tlog";
import { toHex } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fleetWorld } from "./fleet-world.js";
import { add, bundleFromAdd, getText, postWitness, tempDir } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DIST = join(ROOT, "packages/log/dist");
const ORIGIN = "log.example/processes";

interface Ready {
  ready: true;
  url: string;
  origin?: string;
  logKey?: string;
  witnessKey?: string;
}

const running = new Set<ChildProcess>();

function start(
  script: string,
  args: string[],
): Promise<{ proc: ChildProcess; ready: Ready; stderr: () => string }> {
  const proc = spawn(process.execPath, [join(DIST, script), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  running.add(proc);
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve({ proc, ready: JSON.parse(out.slice(0, nl)) as Ready, stderr: () => err });
    });
    // "close", not "exit": by then stderr has been read to its end.
    proc.on("close", (code) =>
      reject(new Error(`${script} exited with ${code} before it was ready: ${err}`)),
    );
  });
}

function stop(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    proc.on("exit", (code) => {
      running.delete(proc);
      resolve(code);
    });
    proc.kill("SIGTERM");
  });
}

beforeAll(() => {
  // The processes run the built files; build them if they are missing or older than the sources.
  const built = join(DIST, "log-main.js");
  const src = join(ROOT, "packages/log/src/log-server.ts");
  if (!existsSync(built) || statSync(built).mtimeMs < statSync(src).mtimeMs) {
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-b", "packages/log"], {
      cwd: ROOT,
    });
  }
}, 120_000);

afterAll(() => {
  for (const p of running) p.kill("SIGKILL");
});

describe("log and witness processes", () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it("start, cosign, survive restarts, and go on appending", async () => {
    const logDir = join(dir.path, "log");
    const witnessDir = join(dir.path, "witness");

    // First start makes the log's key; the witness is configured with it.
    const first = await start("log-main.js", [
      "--dir",
      logDir,
      "--listen",
      "127.0.0.1:0",
      "--origin",
      ORIGIN,
    ]);
    expect(first.ready).toMatchObject({ ready: true, origin: ORIGIN });
    expect(first.ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const logKey = first.ready.logKey!;
    expect(parseVerifierKey(logKey)).toMatchObject({ name: ORIGIN, type: SIG_ED25519 });
    expect(statSync(join(logDir, "log.key")).mode & 0o777).toBe(0o600);
    expect(await stop(first.proc)).toBe(0);

    const witnessArgs = [
      "--dir",
      witnessDir,
      "--listen",
      "127.0.0.1:0",
      "--name",
      "witness.example/w1",
      "--log",
      `${ORIGIN}=${logKey}`,
    ];
    let witness = await start("witness-main.js", witnessArgs);
    const witnessKey = witness.ready.witnessKey!;
    expect(parseVerifierKey(witnessKey)).toMatchObject({
      name: "witness.example/w1",
      type: SIG_COSIGNATURE_V1,
    });
    expect(statSync(join(witnessDir, "witness.key")).mode & 0o777).toBe(0o600);

    expect(statSync(join(witnessDir, "witness.state")).mode & 0o777).toBe(0o600);

    const world = fleetWorld(parseVerifierKey(logKey).publicKey, { freshMembers: true });
    const logArgs = (wurl: string) => [
      "--dir",
      logDir,
      "--listen",
      "127.0.0.1:0",
      "--origin",
      ORIGIN,
      "--witness",
      `${wurl}=${witnessKey}`,
      "--witness-threshold",
      "1",
      "--namespace",
      `fleet=${toHex(world.submitterKey)}`,
      "--vendor-root",
      toHex(world.vendorRoot),
      "--measurement",
      toHex(world.measurement),
      "--max-guess-limit",
      "10",
    ];
    let log = await start("log-main.js", logArgs(witness.ready.url));
    expect(log.ready.logKey).toBe(logKey);
    const policy = { logKey, witnessKeys: [witnessKey], threshold: 1 };

    const [f1, f2, f3] = [1, 2, 3].map((e) => world.fleet("fleet", e)) as [
      ReturnType<typeof world.fleet>,
      ReturnType<typeof world.fleet>,
      ReturnType<typeof world.fleet>,
    ];
    const submit = (url: string, f: typeof f1) => add(url, f, world.sign(f));
    expect((await add(log.ready.url, f1, undefined)).body.code).toBe("SUBMITTER_SIGNATURE");
    const r1 = await submit(log.ready.url, f1);
    const r2 = await submit(log.ready.url, f2);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    verifyLogBundle(bundleFromAdd(r2.body, f2.artifact), policy);
    const before = (await getText(`${log.ready.url}/checkpoint`)).body;
    expect(openCosignedCheckpoint(before, policy).checkpoint.size).toBe(2);
    expect(log.stderr()).toContain('"event":"published"');

    // Restart both on their folders.
    expect(await stop(log.proc)).toBe(0);
    expect(await stop(witness.proc)).toBe(0);
    witness = await start("witness-main.js", witnessArgs);
    expect(witness.ready.witnessKey).toBe(witnessKey);
    // The witness remembers the size it cosigned: a request from 0 is told 2.
    const told = await postWitness(witness.ready.url, `old 0\n\n${before.split("\n— witness")[0]}\n`);
    expect([told.status, told.body]).toEqual([409, "2\n"]);

    log = await start("log-main.js", logArgs(witness.ready.url));
    expect(log.ready.logKey).toBe(logKey);
    expect((await getText(`${log.ready.url}/checkpoint`)).body).toBe(before);
    const r3 = await submit(log.ready.url, f3);
    expect(r3.status).toBe(200);
    expect(r3.body.index).toBe(2);
    expect(verifyLogBundle(bundleFromAdd(r3.body, f3.artifact), policy).checkpoint.size).toBe(3);
    expect((await submit(log.ready.url, world.fleet("fleet", 1))).status).toBe(409);
    expect((await submit(log.ready.url, world.fleet("other", 1))).body.code).toBe("FORBIDDEN");

    expect(await stop(log.proc)).toBe(0);
    expect(await stop(witness.proc)).toBe(0);
  });

  it("refuses flags it cannot use with exit 2 and a message naming them, before it opens anything", async () => {
    const base = (d: string) => ["--dir", join(dir.path, d), "--listen", "127.0.0.1:0"];
    const logBase = (d: string) => [...base(d), "--origin", "o"];
    const witnessBase = (d: string) => [...base(d), "--name", "w", "--log", "o=x"];
    const cases: [string, string[], RegExp][] = [
      ["log-main.js", base("x"), /--origin is required/],
      ["witness-main.js", [...base("y"), "--name", "w"], /at least one --log/],
      ["log-main.js", [...logBase("z"), "--namespace", "ns=abcd"], /--namespace: 64 hex digits/],
      [
        "log-main.js",
        [...logBase("r"), "--release-key", `releases=${"ab".repeat(32)}`],
        /--release-key for a namespace not registered/,
      ],
      // parseArgs' own refusals: an unknown flag, a flag without its value, a positional argument.
      ["log-main.js", [...logBase("u"), "--bogus", "1"], /Unknown option '--bogus'/],
      ["witness-main.js", [...witnessBase("u"), "--bogus", "1"], /Unknown option '--bogus'/],
      ["log-main.js", [...logBase("m"), "--max-guess-limit"], /'--max-guess-limit <value>' argument missing/],
      ["witness-main.js", [...witnessBase("m"), "--adopt-state"], /'--adopt-state <value>' argument missing/],
      ["log-main.js", [...logBase("p"), "extra"], /Unexpected argument 'extra'/],
      // Values: given twice, not a number, out of range, neither yes nor no, a bad --listen.
      ["log-main.js", [...logBase("t"), "--origin", "p"], /--origin given twice/],
      ["log-main.js", [...logBase("n"), "--max-guess-limit", "ten"], /--max-guess-limit must be/],
      ["log-main.js", [...logBase("n"), "--witness-threshold", "1"], /--witness-threshold must be/],
      [
        "log-main.js",
        [...logBase("s"), "--allow-small-fleet", "sure"],
        /--allow-small-fleet wants yes or no/,
      ],
      ["witness-main.js", [...witnessBase("s"), "--adopt-state", "1"], /--adopt-state wants yes or no/],
      // A handovers namespace: NAME=FLEETS, of a namespace registered with --namespace.
      ["log-main.js", [...logBase("h"), "--handovers", "handovers"], /--handovers wants/],
      [
        "log-main.js",
        [...logBase("h"), "--handovers", "h=fleets"],
        /--handovers for a namespace not registered/,
      ],
      [
        "log-main.js",
        ["--dir", join(dir.path, "l"), "--listen", "127.0.0.1", "--origin", "o"],
        /--listen wants/,
      ],
    ];
    const outcomes = await Promise.all(
      cases.map(([script, args]) =>
        start(script, args).then(
          () => "started",
          (e: Error) => e.message,
        ),
      ),
    );
    outcomes.forEach((outcome, i) => {
      const [script, args, message] = cases[i]!;
      expect
        .soft(outcome, `${script} ${args.join(" ")}`)
        .toMatch(new RegExp(`exited with 2 before it was ready: .*"event":"usage".*${message.source}`));
    });
    // None of them made its folder: refused before anything was opened.
    for (const d of ["x", "y", "z", "r", "u", "m", "p", "t", "n", "s", "l", "h"]) {
      expect(existsSync(join(dir.path, d))).toBe(false);
    }
  }, 120_000);

  it("exits 1 when well-formed flags name something it cannot use", async () => {
    // A witness key that is no key: the flags parse, the service refuses it.
    await expect(
      start("witness-main.js", [
        "--dir",
        join(dir.path, "k"),
        "--listen",
        "127.0.0.1:0",
        "--name",
        "w",
        "--log",
        "o=x",
      ]),
    ).rejects.toThrow(/exited with 1 before it was ready: .*"event":"fatal"/);
  });
});
