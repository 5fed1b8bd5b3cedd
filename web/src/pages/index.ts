/** The lessons, in teaching order. */
import type { Page } from "../page.js";
import { flexPage } from "./flex.js";
import { gqaPage } from "./gqa.js";
import { inspectPage } from "./inspect.js";
import { lookupPage } from "./lookup.js";
import { masksPage } from "./masks.js";
import { memoryPage } from "./memory.js";
import { mixingPage } from "./mixing.js";
import { multiheadPage } from "./multihead.js";
import { sdpaPage } from "./sdpa.js";
import { selfCrossPage } from "./selfcross.js";

export const PAGES: readonly Page[] = [lookupPage, mixingPage, sdpaPage, selfCrossPage, multiheadPage, masksPage, gqaPage, memoryPage, inspectPage, flexPage];
