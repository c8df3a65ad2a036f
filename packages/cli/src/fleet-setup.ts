/**
 * Setting up a local fleet's folder (used by `bkv fleet create` and `bkv dev`): the test vendor
 * root, the measured core, the provisioning of each node's HSM (its keys attested by the vendor
 * root, which stays in DIR, outside every HSM folder), each node's HSM command for its platform,
 * and the genesis ceremony, whose evidence is kept in DIR/evidence.bin (and the operator's own
 * record of the messages it passed, no part of the evidence, in DIR/ceremony-log.json).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { promisify } from "node:util";
import { type CeremonyResult, createFleet, type FleetCreated, type FleetParameters } from "@bkv/host";
import { newVendorRoot, writeVendorRoot } from "@bkv/hsm-software";
import { UsageError } from "./args.js";
import { devPaths } from "./dev-files.js";
import { MEASURED_CORE_FILE, OWN_SOURCE_ROOT, writeCore } from "./measure.js";

export type PlatformName = "software" | "pkcs11";

export function platformName(v: string | undefined, dflt: PlatformName): PlatformName {
  const p = v ?? dflt;
  if (p !== "software" && p !== "pkcs11") throw new UsageError("--platform must be software or pkcs11");
  return p;
}

/** fleet.json: what the ceremony produced, and the platform the fleet's HSMs run on. */
export interface DevFleet extends FleetCreated {
  platform: PlatformName;
}

export function readDevFleet(dir: string): DevFleet | null {
  const p = devPaths(dir).fleetJson;
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as DevFleet) : null;
}

function hsmMain(platform: PlatformName, entry: "main" | "provision" = "main"): string {
  const pkg = platform === "software" ? "@bkv/hsm-software" : "@bkv/hsm-pkcs11";
  return createRequire(import.meta.url).resolve(`${pkg}/${entry}`);
}

/**
 * The argv that starts node i's HSM process: its folder and the core, nothing else (it reads its
 * attestation and trusted roots from its folder, and runs with an empty environment).
 */
export function hsmCommand(dir: string, node: number, platform: PlatformName): string[] {
  return hsmArgv(platform, devPaths(dir).hsmDir(node));
}

/** The argv of an HSM process of this platform on its folder (a host config's `hsm`). */
export function hsmArgv(platform: PlatformName, hsmDir: string, core = MEASURED_CORE_FILE): string[] {
  return [process.execPath, hsmMain(platform), "--dir", hsmDir, "--core", core];
}

/**
 * Provision nodes 1..count's HSMs (the factory's step, development only): each platform's
 * provisioning tool, in its own process with an empty environment, makes the HSM's keys if it has
 * none alive (a new folder, or NVRAM wiped), has the folder's test vendor root attest them with the
 * measurement of the built core, and writes the attestation and trusted root into the HSM's folder.
 * Run before every start of the fleet: an HSM with new keys, or a rebuilt core, needs it.
 */
export async function provisionDevHsms(dir: string, count: number, platform: PlatformName): Promise<void> {
  const p = devPaths(dir);
  ensureVendorRoot(dir);
  await Promise.all(
    Array.from({ length: count }, async (_, k) => {
      mkdirSync(p.hsmDir(k + 1), { recursive: true, mode: 0o700 });
      const args = [
        hsmMain(platform, "provision"),
        "--dir",
        p.hsmDir(k + 1),
        "--vendor-key",
        p.vendorRootKey,
      ];
      try {
        await promisify(execFile)(process.execPath, [...args, "--core", MEASURED_CORE_FILE], { env: {} });
      } catch (e) {
        const stderr = (e as { stderr?: string }).stderr ?? "";
        throw new Error(`provisioning node ${k + 1}'s HSM failed: ${stderr.trim() || (e as Error).message}`);
      }
    }),
  );
}

/** Build the measured core if this checkout has not (npm run build does it too). */
export async function ensureCore(): Promise<void> {
  if (!existsSync(MEASURED_CORE_FILE)) await writeCore(OWN_SOURCE_ROOT, MEASURED_CORE_FILE);
}

/** The folder's test vendor root (development only): made once, public key in vendor-root.pub. */
export function ensureVendorRoot(dir: string): void {
  const p = devPaths(dir);
  if (!existsSync(p.vendorRootKey)) writeVendorRoot(newVendorRoot(), p.vendorRootKey, p.vendorRootPub);
}

/**
 * Run the genesis ceremony for nodes 1..count of a folder; keep fleet.json, evidence.bin and
 * ceremony-log.json. params: the guess limit and where the fleet is published (namespace, epoch,
 * the log's raw Ed25519 key), which genesis freezes.
 */
export async function createDevFleet(
  dir: string,
  count: number,
  params: FleetParameters,
  platform: PlatformName,
): Promise<DevFleet> {
  const p = devPaths(dir);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  for (let i = 1; i <= count; i++) {
    mkdirSync(p.hsmDir(i), { recursive: true, mode: 0o700 });
    mkdirSync(p.hostDir(i), { recursive: true, mode: 0o700 });
  }
  await ensureCore();
  await provisionDevHsms(dir, count, platform);
  const result: CeremonyResult = await createFleet(
    Array.from({ length: count }, (_, k) => ({
      node: k + 1,
      hsmCommand: hsmCommand(dir, k + 1, platform),
      storagePath: join(p.hostDir(k + 1), "vault.sqlite"),
    })),
    params,
  );
  writeFileSync(p.evidence, result.evidence);
  writeFileSync(join(p.dir, "ceremony-log.json"), `${JSON.stringify(result.ceremonyLog, null, 2)}\n`);
  const fleet: DevFleet = { ...result.fleet, platform };
  writeFileSync(p.fleetJson, `${JSON.stringify(fleet, null, 2)}\n`);
  return fleet;
}
