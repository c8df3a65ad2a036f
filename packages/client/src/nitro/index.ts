export * from "./aws-root.js";
export * from "./nitro-document.js";
export * from "./nitro-member.js";
export type { ParsedCertificate } from "./x509-chain.js";
