import { fleetSuite } from "./fleet.suite.js";

fleetSuite("pkcs11");
