/**
 * Lesson 10's worker: computes what pages/flex.ts draws (flexMaps.ts, with the library) off the
 * page's thread, where one option change took 90–180 ms and froze the page. It keeps the inputs of
 * the last seed and the last option's result, so moving the rows or the head costs only the rows.
 * It also paints the option's N × N mask for the page (ui/pixels.ts), which then only copies the bytes.
 * While it computes, newer requests queue up: it then starts on the newest and skips the rest (the
 * page draws only the reply to its newest request anyway).
 */
import { N, type FlexReply, type FlexRequest, maskScale, optionKey } from "./flexProtocol.js";
import { type Inputs, type OptionResult, computeOption, computeRows, makeInputs } from "./flexMaps.js";
import { type PaintedCells, paintCells } from "../ui/pixels.js";

interface WorkerScope {
  onmessage: ((e: MessageEvent<FlexRequest>) => void) | null;
  postMessage(message: FlexReply, options?: StructuredSerializeOptions): void;
}
const scope = self as unknown as WorkerScope;

let inputs: Inputs | null = null;
let option: OptionResult | null = null;
/** option's mask painted (N × N cells: painting them on the page's thread was its longest task) */
let maskImage: PaintedCells | null = null;
/** the newest request not yet answered */
let next: FlexRequest | null = null;

function answer(): void {
  const request = next;
  next = null;
  if (!request) return;
  const { id, ...settings } = request;
  try {
    if (inputs?.seed !== settings.seed) inputs = makeInputs(settings.seed);
    if (option?.tiles.key !== optionKey(settings)) {
      option = computeOption(settings, inputs);
      maskImage = paintCells(N, N, option.tiles.mask, maskScale());
    }
    const rows = computeRows(settings, inputs, option);
    // copies of their own, to transfer (the worker keeps its mask, image and inputs for the next request)
    const image = { ...maskImage!, rgba: maskImage!.rgba.slice() };
    const tiles = { ...option.tiles, mask: option.tiles.mask.slice(), maskImage: image };
    const q = Float32Array.from(inputs.q.values);
    const k = Float32Array.from(inputs.k.values);
    scope.postMessage({ id, ok: true, settings, tiles, rows, q, k }, { transfer: [tiles.mask.buffer, image.rgba.buffer, rows.weights.buffer, q.buffer, k.buffer] });
  } catch (err) {
    scope.postMessage({ id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
}

scope.onmessage = (e) => {
  if (next === null) setTimeout(answer); // after the messages already queued, so a burst is answered once
  next = e.data;
};
