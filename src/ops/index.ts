export * from "./elementwise.js";
export * from "./reduce.js";
export * from "./shape.js";
export * from "./matmul.js";
export * from "./softmax.js";
export * from "./norm.js";
export * from "./functional.js";
export * from "./loss.js";
