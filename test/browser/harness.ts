/**
 * Chromium tests of the demo page: a `bkv dev` fleet with its web server, Chromium through
 * playwright-core, a virtual WebAuthn authenticator per "device" (CDP), and screenshots of each step
 * in test-results/browser/.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, type CDPSession, chromium, type Page } from "playwright-core";
import { type DevVault, startDev } from "../e2e/cli.js";

export const CHROMIUM = process.env.BKV_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = fileURLToPath(new URL("../../test-results/browser/", import.meta.url));

/** How long one step of the page may take (bounded waits, no timing assertions). */
export const STEP_MS = 60_000;

export interface Demo {
  dev: DevVault;
  /** The page's URL (http://localhost:PORT: WebAuthn refuses IP addresses as relying party ids). */
  web: string;
  stop(): Promise<void>;
}

export function launchChromium(): Promise<Browser> {
  // --no-sandbox: CI runs as root.
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/** A fleet and the demo's web server: `bkv dev` starts both and names the page `web` in its ready line. */
export async function startDemo(dir: string, extra: string[]): Promise<Demo> {
  const dev = await startDev(dir, extra);
  try {
    if (typeof dev.ready.web !== "string") throw new Error("bkv dev named no web server in its ready line");
    const web = pageUrl(dev.ready.web);
    await expectCors(
      (dev.ready.nodes as { url: string }[]).map((n) => n.url),
      web,
    );
    return { dev, web, stop: async () => void (await dev.stop()) };
  } catch (e) {
    await dev.stop();
    throw e;
  }
}

/**
 * Where to open the page: WebAuthn refuses an IP address as relying party id, so a page on a
 * loopback address is opened as http://localhost:PORT (the web server listens on 127.0.0.1).
 */
export function pageUrl(web: string): string {
  const u = new URL(web);
  if (u.hostname === "127.0.0.1" || u.hostname === "[::1]") u.hostname = "localhost";
  return u.origin;
}

/** The hosts must let the page's origin call them (their corsOrigins), or every vault call fails in the page. */
async function expectCors(hosts: string[], origin: string): Promise<void> {
  for (const h of hosts) {
    const res = await fetch(`${h}/v1/health`, { headers: { origin } });
    await res.body?.cancel();
    if (res.headers.get("access-control-allow-origin") !== origin) {
      throw new Error(
        `host ${h} does not allow the page's origin ${origin} (CORS): bkv dev must put ${origin} in the hosts' corsOrigins`,
      );
    }
  }
}

/** One device: a fresh browser context (empty profile and localStorage) with a virtual passkey authenticator. */
export interface Device {
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
  /** Every request the page made (URLs), to check what was or was not sent. */
  requests: string[];
  console: string[];
}

export async function newDevice(browser: Browser, web: string): Promise<Device> {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const requests: string[] = [];
  const consoleLines: string[] = [];
  page.on("request", (r) => requests.push(`${r.method()} ${r.url()}`));
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      hasPrf: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(`${web}/`);
  await page.locator("body[data-ready='true']").waitFor({ timeout: STEP_MS });
  return { context, page, cdp, authenticatorId, requests, console: consoleLines };
}

/** Move the first device's passkeys to the second, as a synced passkey provider would. */
export async function syncPasskeys(from: Device, to: Device): Promise<number> {
  const { credentials } = await from.cdp.send("WebAuthn.getCredentials", {
    authenticatorId: from.authenticatorId,
  });
  for (const credential of credentials) {
    await to.cdp.send("WebAuthn.addCredential", { authenticatorId: to.authenticatorId, credential });
  }
  return credentials.length;
}

export async function shot(page: Page, test: string, step: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${test}-${step}.png`), fullPage: true });
}

export interface Outcome {
  status: string;
  error: string;
}

/**
 * Trigger one of the page's actions (a click or a key press) and wait, bounded, until it finished:
 * the page counts finished actions in body[data-done]. Returns what the status and alert regions say.
 */
export async function perform(
  d: Device,
  trigger: () => Promise<void>,
  timeoutMs = STEP_MS,
): Promise<Outcome> {
  const done = () => d.page.evaluate(() => Number(document.body.dataset.done ?? "0"));
  const before = await done();
  await trigger();
  try {
    await d.page.waitForFunction((n) => Number(document.body.dataset.done ?? "0") > n, before, {
      timeout: timeoutMs,
      polling: 100,
    });
  } catch (e) {
    throw new Error(`the page's action did not finish: ${(e as Error).message}\n${await describe(d)}`);
  }
  return {
    status: (await d.page.getByTestId("status").textContent()) ?? "",
    error: (await d.page.getByTestId("error").textContent()) ?? "",
  };
}

/** perform() for an action that must succeed; its status message. */
export async function succeed(d: Device, trigger: () => Promise<void>): Promise<string> {
  const o = await perform(d, trigger);
  if (o.error !== "") throw new Error(`the page shows an error: ${o.error}\n${await describe(d)}`);
  return o.status;
}

async function describe(d: Device): Promise<string> {
  const status = await d.page
    .getByTestId("status")
    .textContent()
    .catch(() => "?");
  const error = await d.page
    .getByTestId("error")
    .textContent()
    .catch(() => "?");
  return `status: ${status}\nerror: ${error}\nconsole:\n  ${d.console.join("\n  ")}`;
}

export function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
}
