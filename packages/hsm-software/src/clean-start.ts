/**
 * An HSM process starts clean: no Node flags (execArgv: --require, --import, --loader, --inspect,
 * --prof, …), no NODE_OPTIONS and no environment variable at all (the allow list is empty on both
 * platforms: the PKCS#11 process sets SOFTHSM2_CONF itself, from its folder, after this check).
 * The host spawns it with an empty environment (host/src/hsm-spawn.ts); a process that finds
 * anything else refuses to start, so a host that forgot, or a hand-started process, is noticed.
 *
 * What this cannot do: a preload named by NODE_OPTIONS or a flag has already run when this check
 * runs, and could have hidden itself first. Against an operator who controls the machine, only the
 * host's clean spawn and a real platform's measured launch help (docs/platforms.md).
 */

/** Environment variables an HSM process accepts: none. */
export const HSM_ENV_ALLOWED: readonly string[] = [];

/** Why this start is not clean (names only, never values), or null if it is. */
export function uncleanStart(
  env: NodeJS.ProcessEnv = process.env,
  execArgv: readonly string[] = process.execArgv,
  allowed: readonly string[] = HSM_ENV_ALLOWED,
): string | null {
  const problems: string[] = [];
  if (execArgv.length > 0) {
    problems.push(`it was started with Node flags (${execArgv.filter((a) => a.startsWith("-")).join(" ")})`);
  }
  if (env.NODE_OPTIONS !== undefined) problems.push("NODE_OPTIONS is set");
  const extra = Object.keys(env).filter((k) => k !== "NODE_OPTIONS" && !allowed.includes(k));
  if (extra.length > 0) {
    const shown = extra.slice(0, 8).join(", ") + (extra.length > 8 ? `, … (${extra.length} in all)` : "");
    problems.push(`its environment has variables not on its allow list (${shown})`);
  }
  return problems.length === 0
    ? null
    : `an HSM process starts with an empty environment and no Node flags, but ${problems.join("; ")}. ` +
        "Start it as the host does: node MAIN --dir HSM_DIR --core CORE, with an empty environment (env -i).";
}

/** Exit code of an HSM process that refused an unclean start. */
export const EXIT_UNCLEAN_START = 78;

/** Refuse to run (exit EXIT_UNCLEAN_START with a clear message) unless this process started clean. */
export function refuseUncleanStart(): void {
  const problem = uncleanStart();
  if (problem === null) return;
  process.stderr.write(`hsm: refusing to start: ${problem}\n`);
  process.exit(EXIT_UNCLEAN_START);
}
