/**
 * The log's transparency page in Chromium: it checks the live log of a `bkv dev` fleet in the
 * browser (checkpoint, witnesses, every entry from the tiles, each fleet's evidence, each release's
 * signature under the pinned release key) against the keys in the URL fragment, and refuses the log
 * when those keys are not the log's.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSignerKey } from "@bkv/tlog";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bkv, type DevVault, startDev } from "../e2e/cli.js";
import { launchChromium, STEP_MS, shot } from "./harness.js";

let tmp: string;
let dev: DevVault;
let browser: Browser;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "bkv-transparency-"));
  dev = await startDev(join(tmp, "dev"), ["--nodes", "1"]);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await dev?.stop();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

/**
 * Opens the page; errors collects page errors, every console error and warning, and every answer
 * of 400 or more (a normal visit has none).
 */
async function open(url: string, wait = true): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  await page.goto(url);
  if (!wait) return { page, errors };
  await page.waitForFunction(
    () =>
      /^Checked/.test(document.getElementById("status")?.textContent ?? "") ||
      document.getElementById("error")?.textContent !== "",
    null,
    { timeout: STEP_MS },
  );
  return { page, errors };
}

describe("the transparency page", () => {
  it("checks the live log in the browser: checkpoint, both witnesses, the fleet and its evidence", async () => {
    const url = String(dev.ready.transparency);
    expect(url).toContain("/transparency/#logKey=");
    const { page, errors } = await open(url);
    await shot(page, "transparency", "1-checked");
    expect(await page.textContent("#error")).toBe("");
    // The fleet, and the release of its code that `bkv dev` published under its release key.
    expect(await page.textContent("#status")).toBe("Checked: 2 entries, 2 witness cosignatures.");
    const witnesses = await page.locator("#witnesses li").allTextContents();
    expect(witnesses).toHaveLength(2);
    for (const w of witnesses) expect(w).toMatch(/: cosigned at /);
    const fleets = await page.textContent("#fleets");
    expect(fleets).toContain(`${String(dev.ready.namespace)}, epoch 1 (entry 0)`);
    expect(fleets).toContain(String(dev.ready.fleetId));
    expect(fleets).toContain(String(dev.ready.measurement));
    expect(fleets).toMatch(/\d+ checks hold; bkv test vendor root/);
    expect(fleets).toContain(`Release: ${String(dev.ready.namespace)}-releases, epoch 1 (entry 1)`);
    expect(fleets).toContain("signed by the pinned release key");
    expect(errors).toEqual([]);

    // One audit, one list of checks: the page, `bkv audit` (with the folder's pins and epoch) and
    // `bkv monitor` (its audit.* checks) check the same fleet with the same checks.
    const pageCount = Number(/(\d+) checks hold/.exec(fleets ?? "")?.[1]);
    const ev = join(tmp, "evidence.bin");
    expect((await bkv(["fleet", "evidence", "--dev", dev.dir, "--out", ev])).code).toBe(0);
    const audit = await bkv([
      "audit",
      "--evidence",
      ev,
      "--trust",
      join(dev.dir, "trust.json"),
      "--epoch",
      "1",
      "--json",
    ]);
    expect(audit.code).toBe(0);
    const auditNames = (JSON.parse(audit.stdout) as { checks: { name: string }[] }).checks.map((c) => c.name);
    const monitor = await bkv(["monitor", "--dev", dev.dir, "--json", "--state", join(tmp, "state.json")]);
    expect(monitor.code).toBe(0);
    const fleetEvent = monitor.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; passed?: string[]; skipped?: string[]; fleet?: unknown })
      .find((e) => e.type === "fleet" && e.fleet !== null);
    const monitorNames = [...fleetEvent!.passed!, ...fleetEvent!.skipped!]
      .filter((n) => n.startsWith("audit."))
      .map((n) => n.slice("audit.".length));
    expect(monitorNames.sort()).toEqual([...auditNames].sort());
    expect(auditNames).toEqual(
      expect.arrayContaining(["statement.namespace", "statement.epoch", "statement.log-key"]),
    );
    expect(pageCount).toBe(auditNames.length);
  });

  it("opened without its fragment, says what to paste and where it comes from, and shows no empty results", async () => {
    const url = new URL(String(dev.ready.transparency));
    url.hash = "";
    const { page, errors } = await open(url.href, false);
    await page.waitForFunction(
      () => /^Nothing checked yet/.test(document.getElementById("status")?.textContent ?? ""),
      null,
      {
        timeout: STEP_MS,
      },
    );
    await shot(page, "transparency", "0-no-fragment");
    expect(await page.textContent("#status")).toBe(
      "Nothing checked yet: paste the keys you pin above, then press Check the log.",
    );
    const help = await page.getByTestId("pins-help").textContent();
    expect(help).toContain("trust.json");
    expect(help).toContain("bkv dev");
    expect(await page.locator("#cp-h").isVisible()).toBe(false);
    expect(await page.locator("#fleets-h").isVisible()).toBe(false);
    expect(errors).toEqual([]);
  });

  it("answers 404, not 500, for a file named like an object's property", async () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const r = await fetch(`${String(dev.ready.log)}/transparency/${name}`);
      expect(r.status, name).toBe(404);
    }
  });

  it("refuses the log when the pinned log key is not the log's", async () => {
    const url = new URL(String(dev.ready.transparency));
    const params = new URLSearchParams(url.hash.slice(1));
    const origin = params.get("logKey")!.split("+")[0]!;
    // A key of the same name that is not the log's (what an impostor log would hand out).
    params.set("logKey", generateSignerKey(origin).vkey);
    url.hash = params.toString();
    const { page } = await open(url.href);
    await shot(page, "transparency", "2-wrong-key");
    expect(await page.textContent("#error")).toMatch(/^The log did not check out: /);
    expect(await page.locator("#fleets article").count()).toBe(0);
  });
});
