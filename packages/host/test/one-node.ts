/** Test helper: a vault of one node (genesis ceremony, host agent, HSM process), ready to serve. */
import { createFleet, type HostConfig, type RunningHost, startHost } from "@bkv/host";

export async function startOneNodeVault(config: HostConfig, guessLimit = 10): Promise<RunningHost> {
  await createFleet(
    [{ node: 1, hsmCommand: config.hsmCommand, storagePath: config.storagePath }],
    guessLimit,
  );
  const host = await startHost(config);
  for (let i = 0; i < 200; i++) {
    const h = (await (await fetch(`${host.url}/v1/health`)).json()) as { role?: string };
    if (h.role === "leader") return host;
    await new Promise((r) => setTimeout(r, 25));
  }
  await host.close();
  throw new Error("the vault's HSM did not become leader");
}
