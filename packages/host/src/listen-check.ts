/**
 * Binding a listener, with a port in use reported by name: which listener, which address, and the
 * process that holds it when /proc says (Linux; our own processes or, as root, any).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Server } from "node:net";
import { BkvError, ErrorCode } from "@bkv/wire";

/** The process listening on TCP `port` (any address), as "pid N (command line)", or null. */
export function portHolder(port: number): string | null {
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A") continue; // 0A: LISTEN
      const p = Number.parseInt(f[1]!.split(":")[1] ?? "", 16);
      if (p === port && f[9] !== "0") inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return null;
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^[0-9]+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[([0-9]+)\]$/.exec(target);
      if (m !== null && inodes.has(m[1]!)) {
        let cmd = "";
        try {
          cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
        } catch {
          // gone meanwhile
        }
        return `pid ${pid}${cmd === "" ? "" : ` (${cmd.length > 120 ? `${cmd.slice(0, 117)}...` : cmd})`}`;
      }
    }
  }
  return null;
}

/** The error for a port in use: the listener's name, the address, and who holds it if known. */
export function portInUse(what: string, host: string, port: number, hint = ""): BkvError {
  const holder = portHolder(port);
  return new BkvError(
    ErrorCode.PortInUse,
    `${what} port ${port} on ${host} is in use${holder === null ? "" : ` by ${holder}`}${hint}`,
  );
}

/** Listen on host:port; EADDRINUSE becomes PORT_IN_USE naming the listener. Resolves with the port bound. */
export async function bind(server: Server, what: string, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(e.code === "EADDRINUSE" ? portInUse(what, host, port) : e);
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const a = server.address();
  return typeof a === "object" && a !== null ? a.port : port;
}
