export * from "./evidence-audit.js";
