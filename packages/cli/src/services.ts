/**
 * Starting the local fleet's long-running processes (host agents, the log, the witnesses): each
 * runs detached in its own process group so it outlives the command that started it, writes one
 * JSON ready line to FOLDER/ready.json and its log to FOLDER/<name>.log.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function alive(pid: number | null): boolean {
  if (pid === null) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopProcess(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

export interface Started {
  pid: number;
  ready: Record<string, unknown>;
}

/** Spawn argv detached; wait (at most 15 s) for the first line it prints. */
export async function spawnService(argv: string[], folder: string, name: string): Promise<Started> {
  const readyPath = join(folder, "ready.json");
  const logPath = join(folder, `${name}.log`);
  rmSync(readyPath, { force: true });
  const out = openSync(readyPath, "w");
  const log = openSync(logPath, "a");
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", out, log], detached: true });
  child.unref();
  closeSync(out);
  closeSync(log);
  for (let i = 0; i < 300; i++) {
    await sleep(50);
    const text = existsSync(readyPath) ? readFileSync(readyPath, "utf8") : "";
    if (text.includes("\n")) {
      return {
        pid: child.pid!,
        ready: JSON.parse(text.slice(0, text.indexOf("\n"))) as Record<string, unknown>,
      };
    }
    if (!alive(child.pid!)) break;
  }
  const why = alive(child.pid!) ? "no ready line within 15 s" : "it exited";
  throw new Error(`${name} did not start (${why}); see ${logPath}${logTail(logPath)}`);
}

/** The last lines of a service's log, so that a failed start says why without a second look. */
function logTail(logPath: string, lines = 12): string {
  try {
    const text = readFileSync(logPath, "utf8").trimEnd();
    if (text === "") return "";
    return `\n--- last lines of ${logPath} ---\n${text.split("\n").slice(-lines).join("\n")}`;
  } catch {
    return "";
  }
}
