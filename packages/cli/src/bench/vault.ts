/** Vault benchmark: filled in below. */
export async function benchVault(_opts: { seconds: number }): Promise<void> {
  process.stdout.write("vault benchmark: not yet\n");
}
