/**
 * A vendor root public key file, pinned for an audit or a monitor. A file that says in its first
 * line that it is a test root (as `bkv dev`'s and the provisioning tool's do) is pinned as a test
 * root, which counts only where development is allowed (allowTestRoots).
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import type { PinnedVendorRoot } from "@bkv/client";
import { readVendorRootPub } from "@bkv/hsm-software";
import { toHex } from "@bkv/wire";

export function pinVendorRootFile(path: string, test: boolean): PinnedVendorRoot {
  const key = toHex(readVendorRootPub(path));
  const declaredTest = /test vendor root/i.test(readFileSync(path, "utf8").split("\n")[0] ?? "");
  return { name: basename(path), key, test: test || declaredTest };
}
