/** Lessons as experiments that return numbers (and the text the terminal shows). */
export {
  lookupVsSoft, RecallBlock, recallTensors, keyAccuracy, LOOKUP_VS_SOFT_DEFAULTS,
  type AttentionKind, type RecallBlockOptions, type LookupVsSoftOptions, type LookupVsSoftResult, type RunResult, type CurvePoint,
} from "./lookupVsSoft.js";
export { explainLookupVsSoft, formatLookupVsSoft, wrap } from "./report.js";
