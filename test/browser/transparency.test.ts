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
import { type DevVault, startDev } from "../e2e/cli.js";
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

async function open(url: string): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) errors.push(m.text());
  });
  await page.goto(url);
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
