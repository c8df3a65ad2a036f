/**
 * The demo page in Chromium against a 3-node `bkv dev` fleet (guess limit 3): back up a file in the
 * browser, protect its key with a PIN or passkeys, restore it on a new device (a fresh browser
 * profile), wrong PINs, the locked record, and a tampered validation bundle refused in the page.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type Demo,
  type Device,
  launchChromium,
  newDevice,
  type Outcome,
  perform,
  randomBytes,
  STEP_MS,
  shot,
  startDemo,
  succeed,
  syncPasskeys,
} from "./harness.js";

const GUESS_LIMIT = 3;
const TEST_MS = 180_000;

let tmp: string;
let demo: Demo;
let browser: Browser;
const devices: Device[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "bkv-browser-"));
  demo = await startDemo(join(tmp, "dev"), ["--nodes", "3", "--guess-limit", String(GUESS_LIMIT)]);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  for (const d of devices) await d.context.close().catch(() => {});
  await browser?.close();
  await demo?.stop();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

afterEach(() => {
  // The page ran under its Content-Security-Policy without a violation or an uncaught error.
  for (const d of devices) {
    for (const line of d.console) expect(line).not.toMatch(/Content Security Policy|^pageerror/);
  }
});

async function device(): Promise<Device> {
  const d = await newDevice(browser, demo.web);
  devices.push(d);
  return d;
}

/** A file of random bytes to back up. */
function testFile(name: string, size: number): { path: string; bytes: Uint8Array } {
  const bytes = randomBytes(size);
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return { path, bytes };
}

async function backUp(d: Device, test: string, user: string, file: string): Promise<void> {
  const { page } = d;
  await page.getByLabel("User name", { exact: true }).first().fill(user);
  expect(await succeed(d, () => page.getByTestId("get-token").click())).toMatch(/development token/);
  await page.getByTestId("file").setInputFiles(file);
  expect(await succeed(d, () => page.getByTestId("backup").click())).toMatch(/^Backed up/);
  expect(await page.getByTestId("backup-progress").getAttribute("value")).toBe("100");
  expect(await page.getByTestId("token-state").textContent()).toBe(
    `Development token for ${user} (valid for an hour).`,
  );
  await shot(page, test, "1-backed-up");
}

async function protectWithPin(d: Device, test: string, pin: string): Promise<void> {
  await d.page.getByTestId("pin").fill(pin);
  await d.page.getByTestId("pin-again").fill(pin);
  expect(await succeed(d, () => d.page.getByTestId("register-pin").click())).toMatch(
    new RegExp(`protected by your PIN.*allows ${GUESS_LIMIT} wrong`),
  );
  expect(await d.page.getByTestId("pin").inputValue()).toBe("");
  await shot(d.page, test, "2-protected-pin");
}

/**
 * A flow that is not about an error leaves the console empty: no error, no warning (a 404 is an
 * error line), no note about a password field outside a form.
 */
function expectQuietConsole(d: Device): void {
  expect(d.console.filter((l) => /^(error|warning|pageerror):|password field/i.test(l))).toEqual([]);
}

/** Fill the restore form and press Enter on "Recover with PIN" (keyboard only). */
function recoverWithPin(d: Device, user: string, pin: string): Promise<Outcome> {
  return perform(d, async () => {
    await d.page.getByTestId("restore-user").fill(user);
    await d.page.getByTestId("restore-pin").fill(pin);
    await d.page.getByTestId("recover-pin").focus();
    await d.page.keyboard.press("Enter");
  });
}

/** Save the restored file through the page's download link; its bytes. */
async function download(d: Device, name: string): Promise<Uint8Array> {
  const link = d.page.getByTestId("restored-link");
  await link.waitFor({ timeout: STEP_MS });
  expect(await link.getAttribute("download")).toBe(name);
  const [dl] = await Promise.all([d.page.waitForEvent("download", { timeout: STEP_MS }), link.click()]);
  expect(dl.suggestedFilename()).toBe(name);
  return new Uint8Array(readFileSync(await dl.path()));
}

/**
 * Neither K nor the PIN in the DOM, the URL, the console or localStorage (which holds only the
 * checkpoint and the digests of the fleet artifacts whose evidence the page verified).
 */
async function expectNoSecrets(d: Device, pin: string): Promise<void> {
  const seen = await d.page.evaluate(() => ({
    html: document.documentElement.outerHTML,
    inputs: Array.from(document.querySelectorAll("input"), (i) => i.value),
    url: location.href,
    storage: Object.keys(localStorage),
    session: Object.keys(sessionStorage),
  }));
  expect(seen.storage.every((k) => k.startsWith("bkv.checkpoint.") || k.startsWith("bkv.verified."))).toBe(
    true,
  );
  expect(seen.session).toEqual([]);
  expect(seen.url).not.toContain(pin);
  expect(seen.inputs).not.toContain(pin);
  expect(seen.html).not.toContain(`value="${pin}"`);
  for (const line of d.console) expect(line).not.toContain(pin);
}

describe("the demo page in Chromium", () => {
  it(
    "(a) backs up a file and restores it with the PIN on a new device",
    async () => {
      const test = "pin-restore";
      const user = "alice";
      const pin = "4821";
      const file = testFile("chats.db", 300_000);
      const first = await device();
      await shot(first.page, test, "0-start");
      await backUp(first, test, user, file.path);
      // Two different PINs: refused before anything is sent, both fields asked for again.
      await first.page.getByTestId("pin").fill(pin);
      await first.page.getByTestId("pin-again").fill("4812");
      const differ = await perform(first, () => first.page.getByTestId("register-pin").click());
      expect(differ.error).toMatch(
        /^Protecting with a PIN failed: The two PINs differ: type the same PIN twice/,
      );
      expect(first.requests.filter((r) => r.includes("/v1/vault"))).toEqual([]);
      expect(await first.page.getByTestId("pin-again").inputValue()).toBe("");
      await protectWithPin(first, test, pin);
      await expectNoSecrets(first, pin);
      // The PIN fields do not invite a password manager to keep the PIN.
      for (const id of ["pin", "pin-again", "restore-pin"])
        expect(await first.page.getByTestId(id).getAttribute("autocomplete")).toBe("one-time-code");
      // Protecting again would replace alice's record: the page asks; "no" keeps it.
      const asked: string[] = [];
      first.page.once("dialog", (dlg) => {
        asked.push(dlg.message());
        void dlg.dismiss();
      });
      await first.page.getByTestId("pin").fill("9999");
      await first.page.getByTestId("pin-again").fill("9999");
      expect(await succeed(first, () => first.page.getByTestId("register-pin").click())).toBe(
        `Kept ${user}'s existing PIN record; nothing was changed.`,
      );
      expect(asked).toEqual([
        `${user} already has a PIN record in the vault. Replace it? The old PIN and the backup key it protects stop working.`,
      ]);
      expectQuietConsole(first);

      const second = await device();
      // The PIN is still alice's first one: the refused replacement changed nothing.
      expect((await recoverWithPin(second, user, pin)).error).toBe("");
      const restored = await download(second, "chats.db");
      await shot(second.page, test, "3-restored");
      expect(restored.length).toBe(file.bytes.length);
      expect(Buffer.from(restored).equals(Buffer.from(file.bytes))).toBe(true);
      await expectNoSecrets(second, pin);
      expectQuietConsole(second);
      // The new device remembered the log checkpoint it verified and the fleet whose evidence it
      // verified (once per epoch), and nothing else.
      const stored = await second.page.evaluate(() => Object.keys(localStorage));
      expect(stored.sort()).toEqual(["bkv.checkpoint.bkv-dev", "bkv.verified.bkv-dev"]);
    },
    TEST_MS,
  );

  it(
    "(b) backs up a file and restores it with a synced passkey on a new device",
    async () => {
      const test = "passkey-restore";
      const user = "bob";
      const file = testFile("photos.tar", 400_000);
      const first = await device();
      await backUp(first, test, user, file.path);
      await first.page.getByTestId("passkey-label").fill("Laptop");
      const add = () => first.page.getByTestId("add-passkey").click();
      expect(await succeed(first, add)).toMatch(/Passkey added: 1 passkey protects/);
      expect(await succeed(first, add)).toMatch(/Passkey added: 2 passkeys protect/);
      expect(await first.page.getByTestId("passkeys").locator("li").count()).toBe(2);
      await shot(first.page, test, "2-passkeys-added");

      // The new device: a fresh profile holding the passkeys, moved as a passkey provider syncs them.
      const second = await device();
      expect(await syncPasskeys(first, second)).toBe(2);
      await second.page.getByTestId("restore-user").fill(user);
      const synced = await perform(second, () => second.page.getByTestId("recover-passkey").click());
      await shot(second.page, test, "3-new-device");
      if (synced.error === "") {
        const restored = await download(second, "photos.tar");
        expect(Buffer.from(restored).equals(Buffer.from(file.bytes))).toBe(true);
      } else {
        // Chromium's DevTools protocol moves a credential's key but not its PRF secret, so a virtual
        // authenticator cannot play a synced passkey's PRF: the page must say so plainly.
        expect(synced.error).toMatch(/does not support the PRF extension/);
      }
      expect(second.requests.filter((r) => r.includes("/v1/vault"))).toEqual([]);

      // The passkey's own authenticator with everything else gone: the page loaded anew (no K in
      // memory), its storage and cookies cleared.
      await first.page.evaluate(() => {
        localStorage.clear();
        sessionStorage.clear();
      });
      await first.context.clearCookies();
      await first.page.goto("about:blank");
      await first.page.goto(`${demo.web}/`);
      await first.page.locator("body[data-ready='true']").waitFor({ timeout: STEP_MS });
      const before = first.requests.filter((r) => r.includes("/v1/vault")).length;
      await first.page.getByTestId("restore-user").fill(user);
      expect(await succeed(first, () => first.page.getByTestId("recover-passkey").click())).toMatch(
        /^Restored/,
      );
      const restored = await download(first, "photos.tar");
      await shot(first.page, test, "4-restored");
      expect(Buffer.from(restored).equals(Buffer.from(file.bytes))).toBe(true);
      // No PIN involved: no vault request.
      expect(first.requests.filter((r) => r.includes("/v1/vault")).length).toBe(before);
      expectQuietConsole(first);
      if (synced.error === "") expectQuietConsole(second);
    },
    TEST_MS,
  );

  it(
    "(c) a wrong PIN shows the guesses remaining",
    async () => {
      const test = "wrong-pin";
      const user = "carol";
      const file = testFile("notes.txt", 200_000);
      const first = await device();
      await backUp(first, test, user, file.path);
      await protectWithPin(first, test, "1357");

      const second = await device();
      const wrong = await recoverWithPin(second, user, "0000");
      await shot(second.page, test, "3-wrong-pin");
      expect(wrong.error).toBe(`Wrong PIN. ${GUESS_LIMIT - 1} guesses remaining.`);
      expect(await second.page.getByRole("alert").textContent()).toBe(wrong.error);
      expect(await second.page.getByTestId("locked").isVisible()).toBe(false);
      // The right PIN still works, and resets the count.
      expect((await recoverWithPin(second, user, "1357")).error).toBe("");
      const restored = await download(second, "notes.txt");
      expect(Buffer.from(restored).equals(Buffer.from(file.bytes))).toBe(true);
      await shot(second.page, test, "4-restored");
    },
    TEST_MS,
  );

  it(
    "(d) after the last wrong guess the page shows the locked state and the right PIN no longer works",
    async () => {
      const test = "locked";
      const user = "dave";
      const file = testFile("mail.mbox", 100_000);
      const first = await device();
      await backUp(first, test, user, file.path);
      await protectWithPin(first, test, "2468");

      const second = await device();
      for (let left = GUESS_LIMIT - 1; left >= 1; left--) {
        const o = await recoverWithPin(second, user, `99${left}9`);
        expect(o.error).toBe(`Wrong PIN. ${left} ${left === 1 ? "guess" : "guesses"} remaining.`);
        await shot(second.page, test, `3-wrong-${GUESS_LIMIT - left}`);
      }
      expect(await second.page.getByTestId("locked").isVisible()).toBe(false);
      const last = await recoverWithPin(second, user, "9999");
      expect(last.error).toMatch(/last guess.*Locked/);
      expect(await second.page.getByTestId("locked").isVisible()).toBe(true);
      // dave has no passkey: the lock screen does not offer one.
      expect(await second.page.getByTestId("locked-passkey").isVisible()).toBe(false);
      await shot(second.page, test, "4-locked");

      const right = await recoverWithPin(second, user, "2468");
      expect(right.error).toMatch(/^Locked: /);
      expect(await second.page.getByTestId("locked").isVisible()).toBe(true);
      expect(await second.page.getByTestId("restored-link").count()).toBe(0);
      await shot(second.page, test, "5-right-pin-refused");

      // A device that knows nothing of this page's history: the vault has no record any more.
      const third = await device();
      const none = await recoverWithPin(third, user, "2468");
      expect(none.error).toMatch(/no PIN record for this user/);
      expect(await third.page.getByTestId("restored-link").count()).toBe(0);
      await shot(third.page, test, "6-new-device-no-record");
    },
    TEST_MS,
  );

  it(
    "(e) a tampered validation bundle is refused in the page and nothing is sent",
    async () => {
      const test = "tampered-bundle";
      const d = await device();
      let tampered = 0;
      await d.page.route(/\/v1\/bundle(\?|$)/, async (route) => {
        const res = await route.fetch();
        const body = (await res.json()) as { countersignature: string };
        const sig = body.countersignature;
        // Change the first character: a different first byte of the signature.
        body.countersignature = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
        tampered++;
        await route.fulfill({ response: res, json: body });
      });
      const { error } = await recoverWithPin(d, "erin", "4821");
      await shot(d.page, test, "1-refused");
      expect(error).toMatch(/^The vault's keys could not be verified \(BUNDLE_[A-Z_]+\); nothing was sent/);
      expect(tampered).toBeGreaterThan(0);
      expect(d.requests.some((r) => /\/v1\/bundle/.test(r))).toBe(true);
      expect(d.requests.filter((r) => r.includes("/v1/vault"))).toEqual([]);
    },
    TEST_MS,
  );
});
