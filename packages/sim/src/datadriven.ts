/**
 * Test scripts as readable text, in the style of etcd-raft's `testdata/*.txt` (cockroachdb's
 * datadriven format): every case is a command line, a line `----`, and the output the command must
 * produce; cases are separated by a blank line; lines starting with `#` are comments. The fleet
 * scenarios (scenario.ts) and the Raft message-level scripts (raft-script.ts) both use it, each with
 * its own commands.
 *
 * Parsing is strict: a command the caller's parser refuses (it throws a ScriptError), a command
 * without its `----`, or a first command other than the required one is an Error naming the file
 * and line. With REWRITE=1 the runners write actual outputs back (renderScript), for a person to
 * read and check.
 */

export const SEPARATOR = "----";

/** A command the script's parser refuses; the message is plain, file and line are added. */
export class ScriptError extends Error {}

export interface ScriptCase<C> {
  file: string;
  /** 1-based line of the command. */
  line: number;
  /** The command line as written. */
  text: string;
  command: C;
  expected: string[];
}

/** A parsed file: its cases, and its lines as text and cases (for rewriting with actual outputs). */
export interface Script<C> {
  file: string;
  cases: ScriptCase<C>[];
  parts: ({ kind: "text"; line: string } | { kind: "case"; index: number })[];
}

export interface CaseResult<C> {
  scenarioCase: ScriptCase<C>;
  actual: string[];
}

/**
 * Parse a script. parse turns one command line into a command (or throws ScriptError); the first
 * command must be named `first`, and it must appear only there.
 */
export function parseScript<C extends { kind: string }>(
  text: string,
  file: string,
  first: string,
  parse: (line: string) => C,
): Script<C> {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop(); // the final newline
  const cases: ScriptCase<C>[] = [];
  const parts: Script<C>["parts"] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    const at = (n: number) => `${file}:${n + 1}`;
    if (line.includes("\r")) throw new Error(`${at(i)}: carriage return in line (use \\n line endings)`);
    if (line.trim() === "" || line.startsWith("#")) {
      parts.push({ kind: "text", line });
      i++;
      continue;
    }
    if (line === SEPARATOR) throw new Error(`${at(i)}: "${SEPARATOR}" without a command before it`);
    if (/^\s/.test(line)) throw new Error(`${at(i)}: a command must start at the beginning of the line`);
    let command: C;
    try {
      command = parse(line);
    } catch (e) {
      if (e instanceof ScriptError) throw new Error(`${at(i)}: ${e.message}`);
      throw e;
    }
    if (command.kind === first && cases.length > 0)
      throw new Error(`${at(i)}: "${first}" must be the first command, and only once`);
    if (command.kind !== first && cases.length === 0)
      throw new Error(`${at(i)}: the first command must be "${first}"`);
    const commandLine = i;
    i++;
    if (lines[i] !== SEPARATOR) {
      throw new Error(
        `${at(i < lines.length ? i : commandLine)}: expected "${SEPARATOR}" after the command on line ${commandLine + 1}`,
      );
    }
    i++;
    const expected: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== "") {
      if (lines[i]!.includes("\r"))
        throw new Error(`${at(i)}: carriage return in line (use \\n line endings)`);
      expected.push(lines[i]!);
      i++;
    }
    parts.push({ kind: "case", index: cases.length });
    cases.push({ file, line: commandLine + 1, text: line.trimEnd(), command, expected });
  }
  if (cases.length === 0) throw new Error(`${file}: no commands (the first must be "${first}")`);
  return { file, cases, parts };
}

/** The file again, with each case's expected output replaced by its actual output. */
export function renderScript<C>(s: Script<C>, actual: readonly (readonly string[])[]): string {
  const out: string[] = [];
  s.parts.forEach((p, k) => {
    if (p.kind === "text") {
      out.push(p.line);
      return;
    }
    const c = s.cases[p.index]!;
    out.push(c.text, SEPARATOR, ...(actual[p.index] ?? c.expected));
    // Cases are separated by a blank line: keep one even where the file had none.
    const next = s.parts[k + 1];
    if (next !== undefined && !(next.kind === "text" && next.line.trim() === "")) out.push("");
  });
  return `${out.join("\n")}\n`;
}

/**
 * Run every case in order with run; a ScriptError or any other error while running throws an Error
 * naming the file and line, and so does an output with a blank line (it would end the case).
 */
export async function runScript<C>(
  s: Script<C>,
  run: (command: C) => Promise<string[]>,
): Promise<CaseResult<C>[]> {
  const results: CaseResult<C>[] = [];
  for (const c of s.cases) {
    let actual: string[];
    try {
      actual = await run(c.command);
    } catch (e) {
      if (e instanceof ScriptError) throw new Error(`${c.file}:${c.line}: ${e.message}`);
      throw new Error(`${c.file}:${c.line}: ${c.text}: ${(e as Error).message}`, { cause: e });
    }
    if (actual.some((l) => l.trim() === ""))
      throw new Error(`${c.file}:${c.line}: output has a blank line, which would end the case`);
    results.push({ scenarioCase: c, actual });
  }
  return results;
}

/** A line diff (longest common subsequence): "  same", "- expected", "+ actual". */
export function diffLines(expected: readonly string[], actual: readonly string[]): string[] {
  const n = expected.length;
  const m = actual.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] =
        expected[i] === actual[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] === actual[j]) {
      out.push(`  ${expected[i]}`);
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      out.push(`- ${expected[i]}`);
      i++;
    } else {
      out.push(`+ ${actual[j]}`);
      j++;
    }
  }
  return out;
}

/** One message per case whose output differs from the expected text; empty if all match. */
export function mismatches<C>(results: readonly CaseResult<C>[]): string[] {
  const out: string[] = [];
  for (const { scenarioCase: c, actual } of results) {
    if (c.expected.length === actual.length && c.expected.every((l, k) => l === actual[k])) continue;
    const shown = (ls: readonly string[]) => (ls.length === 0 ? ["(no output)"] : ls);
    out.push(
      [
        `${c.file}:${c.line}: ${c.text}`,
        "--- expected",
        "+++ actual",
        ...diffLines(shown(c.expected), shown(actual)),
      ].join("\n"),
    );
  }
  return out;
}
