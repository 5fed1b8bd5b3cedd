/**
 * An optimizer state dict as flat named tensors plus a JSON string, so it fits in a safetensors file
 * beside the model's weights:  `<prefix><param id>.<buffer>` → tensor, and the JSON holds each
 * parameter's step count and the param groups' hyperparameters.
 */
import { ArgumentError } from "../tensor/errors.js";
import type { Tensor } from "../tensor/tensor.js";
import type { OptimizerStateDict, ParamState } from "./optimizer.js";

interface StateJson {
  steps: Record<string, number>;
  paramGroups: OptimizerStateDict["paramGroups"];
}

export function optimizerStateToTensors(sd: OptimizerStateDict, prefix = "optimizer."): { tensors: Record<string, Tensor>; json: string } {
  const tensors: Record<string, Tensor> = {};
  const steps: Record<string, number> = {};
  for (const [id, st] of Object.entries(sd.state)) {
    steps[id] = st.step;
    for (const [name, b] of Object.entries(st.buffers)) tensors[`${prefix}${id}.${name}`] = b;
  }
  const json: StateJson = { steps, paramGroups: sd.paramGroups };
  return { tensors, json: JSON.stringify(json) };
}

export function optimizerStateFromTensors(tensors: Record<string, Tensor>, json: string, prefix = "optimizer."): OptimizerStateDict {
  const fn = "optimizerStateFromTensors";
  let parsed: StateJson;
  try {
    parsed = JSON.parse(json) as StateJson;
  } catch {
    throw new ArgumentError(`${fn}: the optimizer metadata is not valid JSON`);
  }
  if (parsed === null || typeof parsed !== "object" || typeof parsed.steps !== "object" || !Array.isArray(parsed.paramGroups)) {
    throw new ArgumentError(`${fn}: the optimizer metadata must be { steps, paramGroups }`);
  }
  const state: Record<number, ParamState> = {};
  for (const [id, step] of Object.entries(parsed.steps)) state[Number(id)] = { step, buffers: {} };
  for (const [key, t] of Object.entries(tensors)) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    const dot = rest.indexOf(".");
    const id = Number(rest.slice(0, dot));
    if (dot < 0 || !Number.isInteger(id) || state[id] === undefined) throw new ArgumentError(`${fn}: tensor ${key} belongs to no parameter in the metadata`);
    state[id].buffers[rest.slice(dot + 1)] = t;
  }
  return { state, paramGroups: parsed.paramGroups };
}
