/**
 * The web server process:
 *   node packages/web/dist/web-main.js --dir DIR --listen 127.0.0.1:PORT --config FILE [--sdk FILE]
 * Prints one JSON line on stdout when listening: {"ready":true,"url":...,"origins":[...]}; errors go
 * to stderr as JSON lines. SIGTERM/SIGINT close it.
 */
import { parseArgs } from "node:util";
import { loadWebConfig } from "./config.js";
import { startWebServer } from "./web-server.js";

function fatal(message: string): never {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event: "fatal", message })}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      dir: { type: "string" },
      listen: { type: "string" },
      config: { type: "string" },
      sdk: { type: "string" },
    },
    strict: true,
  });
  if (values.dir === undefined || values.config === undefined)
    fatal("usage: web-main --dir DIR --listen HOST:PORT --config FILE [--sdk FILE]");
  const listen = values.listen ?? "127.0.0.1:0";
  const i = listen.lastIndexOf(":");
  const port = Number(listen.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) fatal(`bad --listen ${listen}`);
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  const web = await startWebServer({
    dir: values.dir,
    config: loadWebConfig(values.config),
    host,
    port,
    ...(values.sdk === undefined ? {} : { sdkFile: values.sdk }),
  });
  const stop = () => {
    web.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(`${JSON.stringify({ ready: true, url: web.url, origins: web.origins })}\n`);
}

main().catch((e: unknown) => fatal(e instanceof Error ? e.message : String(e)));
