/**
 * Scenario tests as readable text, in the style of etcd-raft's `testdata/*.txt` (cockroachdb's
 * datadriven format): every test case is a command line, a line `----`, and the output the command
 * must produce; cases are separated by a blank line; lines starting with `#` are comments.
 *
 *     # Alice's PIN opens her record through any node.
 *     recover user=alice pin=1234 via=2
 *     ----
 *     recovered (key matches)
 *
 * One scenario file drives one in-process fleet (fleet.ts: the real HSM cores) from its first
 * command, `fleet`, to its end. `packages/sim/test/scenarios.test.ts` runs every file in
 * `packages/sim/testdata/` and compares each command's output with the expected text; with the
 * environment variable `REWRITE=1` it writes the actual output into the files instead
 * (`REWRITE=1 npx vitest run packages/sim/test/scenarios.test.ts`), for a person to read and check.
 *
 * The parser is strict: an unknown command or argument, a bad value, or a command without its `----`
 * line throws an Error naming the file and line. A command that cannot be carried out in the fleet's
 * present state (restart a node that is up) prints `error: …` as its output instead, so scenarios
 * can show it. Outputs are short and deterministic: no times, hashes or session ids.
 *
 * Commands (N is a node number, from 1):
 *
 *     fleet nodes=3 guess-limit=3 [seed=1] [snapshot-every=K]   create the fleet (first command)
 *     register user=U pin=P [via=N]       run the client operation through node N's host
 *     recover user=U pin=P [via=N]          (default: the current leader, else node 1)
 *     delete user=U pin=P [via=N]
 *     tick [n=1]                          advance n ticks; prints the leader line if it changed
 *     wait-leader [max-ticks=100]         tick until a leader has committed in its term
 *     crash node=N                        stop node N's HSM at once
 *     restart node=N                      boot node N from its host storage and NVRAM
 *     partition 1,2 | 3,4,5               split the network: every node in exactly one group
 *     heal                                deliver everything again
 *     backup node=N name=X                copy node N's host storage
 *     restore node=N name=X               put copy X back as node N's host storage (N must be down)
 *     status                              one line per node
 *     guesses                             committed guesses used, per user and node
 */

import { VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { bytesEqual, isBkvError } from "@bkv/wire";
import {
  diffLines,
  mismatches,
  parseScript,
  renderScript,
  runScript,
  type Script,
  type ScriptCase,
  type CaseResult as ScriptCaseResult,
  ScriptError,
} from "./datadriven.js";
import { SimFleet, type Stored } from "./fleet.js";

// ---------------------------------------------------------------------------------------------
// Commands.

export type Command =
  | { kind: "fleet"; nodes: number; guessLimit: number; seed: number; snapshotEvery: number | null }
  | { kind: "register" | "recover" | "delete"; user: string; pin: string; via: number | null }
  | { kind: "tick"; n: number }
  | { kind: "wait-leader"; maxTicks: number }
  | { kind: "crash" | "restart"; node: number }
  | { kind: "partition"; groups: number[][] }
  | { kind: "heal" }
  | { kind: "backup" | "restore"; node: number; name: string }
  | { kind: "status" }
  | { kind: "guesses" };

export type ScenarioCase = ScriptCase<Command>;
export type Scenario = Script<Command>;
export type CaseResult = ScriptCaseResult<Command>;

/** Scenario commands refused by the parser or the interpreter. */
const ScenarioError = ScriptError;

type ArgKind = "node" | "count" | "word" | "pin";

interface Spec {
  args: Record<string, ArgKind>;
  required: string[];
  /** Takes bare (non key=value) arguments: only `partition`. */
  bare?: boolean;
}

const OP_SPEC: Spec = { args: { user: "word", pin: "pin", via: "node" }, required: ["user", "pin"] };

const SPECS: Record<Command["kind"], Spec> = {
  fleet: {
    args: { nodes: "count", "guess-limit": "count", seed: "count", "snapshot-every": "count" },
    required: ["nodes", "guess-limit"],
  },
  register: OP_SPEC,
  recover: OP_SPEC,
  delete: OP_SPEC,
  tick: { args: { n: "count" }, required: [] },
  "wait-leader": { args: { "max-ticks": "count" }, required: [] },
  crash: { args: { node: "node" }, required: ["node"] },
  restart: { args: { node: "node" }, required: ["node"] },
  partition: { args: {}, required: [], bare: true },
  heal: { args: {}, required: [] },
  backup: { args: { node: "node", name: "word" }, required: ["node", "name"] },
  restore: { args: { node: "node", name: "word" }, required: ["node", "name"] },
  status: { args: {}, required: [] },
  guesses: { args: {}, required: [] },
};

function isKind(s: string): s is Command["kind"] {
  return Object.hasOwn(SPECS, s);
}

/** Parse one command line (without its output). Throws ScenarioError with a plain message. */
function parseCommand(text: string): Command {
  const tokens = text.trim().split(/\s+/);
  const name = tokens[0]!;
  if (!isKind(name)) {
    throw new ScenarioError(`unknown command "${name}" (known: ${Object.keys(SPECS).join(", ")})`);
  }
  const spec = SPECS[name];
  const values = new Map<string, string>();
  const bare: string[] = [];
  for (const t of tokens.slice(1)) {
    const eq = t.indexOf("=");
    if (eq < 0) {
      if (spec.bare !== true) throw new ScenarioError(`${name}: unexpected argument "${t}"`);
      bare.push(t);
      continue;
    }
    const key = t.slice(0, eq);
    const value = t.slice(eq + 1);
    const kind = spec.args[key];
    if (kind === undefined) {
      const known = Object.keys(spec.args);
      throw new ScenarioError(
        `${name}: unknown argument "${key}"` + (known.length > 0 ? ` (known: ${known.join(", ")})` : ""),
      );
    }
    if (values.has(key)) throw new ScenarioError(`${name}: argument "${key}" given twice`);
    checkValue(name, key, kind, value);
    values.set(key, value);
  }
  for (const r of spec.required) {
    if (!values.has(r)) throw new ScenarioError(`${name}: missing argument ${r}=`);
  }
  const int = (key: string, fallback: number): number => {
    const v = values.get(key);
    return v === undefined ? fallback : Number(v);
  };
  const str = (key: string): string => values.get(key)!;
  const via = values.has("via") ? int("via", 0) : null;
  switch (name) {
    case "fleet": {
      const nodes = int("nodes", 0);
      if (nodes < 1 || nodes > 9) throw new ScenarioError("fleet: nodes must be 1 to 9");
      return {
        kind: name,
        nodes,
        guessLimit: int("guess-limit", 0),
        seed: int("seed", 1),
        snapshotEvery: values.has("snapshot-every") ? int("snapshot-every", 0) : null,
      };
    }
    case "register":
    case "recover":
    case "delete":
      return { kind: name, user: str("user"), pin: str("pin"), via };
    case "tick":
      return { kind: name, n: int("n", 1) };
    case "wait-leader":
      return { kind: name, maxTicks: int("max-ticks", 100) };
    case "crash":
    case "restart":
      return { kind: name, node: int("node", 0) };
    case "backup":
    case "restore":
      return { kind: name, node: int("node", 0), name: str("name") };
    case "partition":
      return { kind: name, groups: parseGroups(bare) };
    case "heal":
    case "status":
    case "guesses":
      return { kind: name };
  }
}

function checkValue(command: string, key: string, kind: ArgKind, value: string): void {
  const ok =
    kind === "node"
      ? /^[1-9]$/.test(value)
      : kind === "count"
        ? /^(0|[1-9][0-9]{0,6})$/.test(value)
        : kind === "pin"
          ? /^[0-9]{1,32}$/.test(value)
          : /^[a-z0-9][a-z0-9._-]{0,63}$/.test(value);
  if (!ok) {
    const what =
      kind === "node"
        ? "a node number 1 to 9"
        : kind === "count"
          ? "a whole number"
          : kind === "pin"
            ? "digits"
            : "a lowercase name (a-z 0-9 . _ -)";
    throw new ScenarioError(`${command}: ${key}=${value}: expected ${what}`);
  }
}

/** `1,2 | 3,4,5` (tokens split on whitespace): groups of nodes separated by `|`. */
function parseGroups(bare: string[]): number[][] {
  const text = bare.join(" ");
  const groups = text.split("|").map((g) => g.trim());
  if (groups.length < 2) throw new ScenarioError(`partition: expected groups like "1,2 | 3"`);
  const seen = new Set<number>();
  return groups.map((g) => {
    if (!/^[1-9](,[1-9])*$/.test(g.replace(/\s+/g, "")))
      throw new ScenarioError(`partition: "${g}" is not a list of nodes like 1,2`);
    return g
      .replace(/\s+/g, "")
      .split(",")
      .map((s) => {
        const n = Number(s);
        if (seen.has(n)) throw new ScenarioError(`partition: node ${n} is in two groups`);
        seen.add(n);
        return n;
      });
  });
}

// ---------------------------------------------------------------------------------------------
// Files.

/** Parse a scenario file. Throws an Error naming the file and line on anything malformed. */
export function parseScenario(text: string, file: string): Scenario {
  return parseScript(text, file, "fleet", parseCommand);
}

/** The file again, with each case's expected output replaced by its actual output. */
export const renderScenario: (s: Scenario, actual: readonly (readonly string[])[]) => string = renderScript;

// ---------------------------------------------------------------------------------------------
// Running.

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
/** Virtual start time: fixed, so a scenario is a function of its text. */
const START_TIME = 1_800_000_000_000;

/** The backup key registered for a user: derived from the name, so recover can check it. */
export function backupKeyFor(user: string): Uint8Array {
  const k = new Uint8Array(32);
  for (let i = 0; i < 32; i++) k[i] = (user.charCodeAt(i % user.length) + 7 * i) & 0xff;
  return k;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

class Interpreter {
  private fleet: SimFleet | null = null;
  private readonly backups = new Map<string, Stored>();
  /** Users registered in this scenario (listed by `guesses` even once their record is gone). */
  private readonly users = new Set<string>();

  private get f(): SimFleet {
    if (this.fleet === null) throw new Error("no fleet yet");
    return this.fleet;
  }

  private checkNode(n: number): void {
    if (n > this.f.nodes.length) throw new ScenarioError(`no node ${n} in a fleet of ${this.f.nodes.length}`);
  }

  leaderLine(): string {
    const l = this.f.leader();
    if (l === 0) return "no leader";
    return `leader: node ${l} (term ${this.f.node(l).core!.inspect().term})`;
  }

  /** A leader that has committed an entry of its own term (the fleet can serve). */
  private settledLeader(): boolean {
    const l = this.f.leader();
    if (l === 0) return false;
    const v = this.f.node(l).core!.inspect();
    return v.state.term === v.term && v.commitIndex === v.state.index;
  }

  async run(c: Command): Promise<string[]> {
    switch (c.kind) {
      case "fleet":
        this.fleet = await SimFleet.create({
          nodes: c.nodes,
          guessLimit: c.guessLimit,
          seed: c.seed,
          startTime: START_TIME,
          ...(c.snapshotEvery === null ? {} : { core: { snapshotEvery: c.snapshotEvery } }),
        });
        return [this.leaderLine()];
      case "register":
      case "recover":
      case "delete":
        if (c.via !== null) this.checkNode(c.via);
        return [await this.clientOp(c.kind, c.user, c.pin, c.via)];
      case "tick": {
        const before = this.leaderLine();
        for (let t = 0; t < c.n; t++) await this.f.tick();
        const after = this.leaderLine();
        return after === before ? [] : [after];
      }
      case "wait-leader":
        for (let t = 0; t < c.maxTicks && !this.settledLeader(); t++) await this.f.tick();
        return [
          this.settledLeader() ? this.leaderLine() : `no leader after ${plural(c.maxTicks, "tick", "ticks")}`,
        ];
      case "crash":
        this.checkNode(c.node);
        if (!this.f.node(c.node).up) return [`error: node ${c.node} is already down`];
        this.f.crash(c.node);
        return [];
      case "restart": {
        this.checkNode(c.node);
        if (this.f.node(c.node).up) return [`error: node ${c.node} is up (crash it first)`];
        const b = await this.f.start(c.node);
        if (b.type === "booted") return [b.recovering ? "booted recovering" : "booted"];
        if (b.type === "failed") return [`failed ${b.code}: ${b.message}`];
        return [`unexpected boot answer ${b.type}`];
      }
      case "partition": {
        const all = this.f.nodes.map((n) => n.id);
        const listed = c.groups.flat();
        for (const n of listed) this.checkNode(n);
        const missing = all.filter((n) => !listed.includes(n));
        if (missing.length > 0)
          throw new ScenarioError(`partition: node ${missing.join(", ")} is in no group`);
        const group = new Map<number, number>();
        c.groups.forEach((g, k) => {
          for (const n of g) group.set(n, k);
        });
        this.f.blocked = (from, to) => group.get(from) !== group.get(to);
        return [];
      }
      case "heal":
        this.f.blocked = () => false;
        return [];
      case "backup":
        this.checkNode(c.node);
        this.backups.set(c.name, this.f.node(c.node).copyStorage());
        return [];
      case "restore": {
        this.checkNode(c.node);
        const copy = this.backups.get(c.name);
        if (copy === undefined) return [`error: no backup named ${c.name}`];
        const n = this.f.node(c.node);
        if (n.up) return [`error: node ${c.node} is up (crash it first)`];
        n.stored = {
          snapshot:
            copy.snapshot === null ? null : { ...copy.snapshot, sealed: copy.snapshot.sealed.slice() },
          entries: copy.entries.map((e) => ({ index: e.index, sealed: e.sealed.slice() })),
        };
        return [];
      }
      case "status":
        return this.f.nodes.map((n) => {
          if (n.core === null) return `node ${n.id}: down, storage ends at ${storageTip(n.stored)}`;
          const v = n.core.inspect();
          if (!["follower", "pre-candidate", "candidate", "leader"].includes(v.role))
            return `node ${n.id}: ${v.role}`;
          return `node ${n.id}: ${v.role} term ${v.term} commit ${v.commitIndex}${v.recovering ? " recovering" : ""}`;
        });
      case "guesses": {
        const users = new Set(this.users);
        for (const n of this.f.nodes)
          for (const u of n.core?.inspect().state.records.keys() ?? []) users.add(u);
        if (users.size === 0) return ["no users"];
        return [...users].sort().map((u) => {
          const cells = this.f.nodes.map((n) => {
            if (n.core === null) return `node${n.id}=down`;
            const rec = n.core.inspect().state.records.get(u);
            return `node${n.id}=${rec === undefined ? "none" : rec.guessesUsed}`;
          });
          return `${u}: ${cells.join(" ")}`;
        });
      }
    }
  }

  private async clientOp(
    op: "register" | "recover" | "delete",
    user: string,
    pin: string,
    via: number | null,
  ): Promise<string> {
    if (op === "register") this.users.add(user);
    const f = this.f;
    const client = new VaultClient({
      user,
      vaultPublicKey: f.vaultPublicKey(),
      transport: f.transport(via ?? undefined),
      keyStretching: LIGHT,
      hpke: nodeHpkeSealer,
      now: () => f.time,
    });
    try {
      switch (op) {
        case "register":
          await client.register(pin, backupKeyFor(user), { replace: true });
          return "ok";
        case "recover": {
          const { backupKey } = await client.recover(pin);
          return bytesEqual(backupKey, backupKeyFor(user))
            ? "recovered (key matches)"
            : "recovered (KEY DIFFERS from the registered one)";
        }
        case "delete":
          await client.delete(pin);
          return "ok";
      }
    } catch (e) {
      if (!isBkvError(e)) throw e;
      switch (e.code) {
        case "WRONG_PIN":
          return `wrong PIN, ${plural(e.guessesRemaining ?? 0, "guess", "guesses")} remaining`;
        case "NO_RECORD":
          return "no record";
        case "UNAVAILABLE":
          return "unavailable";
        default:
          return `error ${e.code}`;
      }
    }
  }
}

function storageTip(s: Stored): number {
  return s.entries.at(-1)?.index ?? s.snapshot?.index ?? 0;
}

/**
 * Run every case of a scenario against one fleet, in order. A scenario bug found while running
 * (a node the fleet does not have, an output with a blank line) throws an Error naming file and line.
 */
export async function runScenario(s: Scenario): Promise<CaseResult[]> {
  const interp = new Interpreter();
  return runScript(s, (c) => interp.run(c));
}

export { diffLines, mismatches };
