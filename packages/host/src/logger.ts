/** The structured logger the host uses (pino through fastify). Log events, never request bodies. */
import type { FastifyBaseLogger } from "fastify";

export type Logger = Pick<FastifyBaseLogger, "info" | "warn" | "error">;
