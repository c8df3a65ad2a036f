/** Serving a service's HTTP app: listen, or close the service if the port cannot be had. */
import type { FastifyInstance } from "fastify";

/** Listen on host:port (0: any free port) and return the base URL; on failure close and rethrow. */
export async function listen(
  app: FastifyInstance,
  host: string,
  port: number,
  closeService: () => void,
): Promise<string> {
  try {
    await app.listen({ host, port });
  } catch (e) {
    closeService();
    throw e;
  }
  const addr = app.server.address();
  return typeof addr === "object" && addr !== null ? `http://${host}:${addr.port}` : `http://${host}:${port}`;
}
