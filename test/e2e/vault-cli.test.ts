import { vaultCliSuite } from "./vault-cli.suite.js";

vaultCliSuite("software");
