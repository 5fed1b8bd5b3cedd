/**
 * Small sequence tasks whose solutions are attention patterns you can recognise in the maps:
 * reverse (an anti-diagonal), sort (each output position hunts for the k-th smallest digit) and
 * previous token (a causal model copying from one step back: the sub-diagonal).
 */
import { Generator } from "attend";

export interface Task {
  id: string;
  name: string;
  /** causal models may only look back */
  causal: boolean;
  target(x: readonly number[]): number[];
}

export const VOCAB = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

export const TASKS: readonly Task[] = [
  { id: "reverse", name: "reverse the digits", causal: false, target: (x) => [...x].reverse() },
  { id: "sort", name: "sort the digits", causal: false, target: (x) => [...x].sort((a, b) => a - b) },
  { id: "previous", name: "previous token (causal)", causal: true, target: (x) => x.map((_, i) => x[Math.max(0, i - 1)]) },
];

export function taskById(id: string): Task {
  return TASKS.find((t) => t.id === id) ?? TASKS[0];
}

/** A batch of random digit sequences and their targets, flat row-major [B, L]. */
export function sampleBatch(task: Task, B: number, L: number, g: Generator): { x: Int32Array; y: Int32Array } {
  const x = new Int32Array(B * L), y = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    const seq = Array.from({ length: L }, () => g.nextInt(VOCAB.length));
    x.set(seq, b * L);
    y.set(task.target(seq), b * L);
  }
  return { x, y };
}

/** "3 1 4 1 5" or "31415" -> digits, cut or padded (with 0) to length L. */
export function parseDigits(text: string, L: number): number[] {
  const digits = [...text.replace(/[^0-9]/g, "")].map(Number).slice(0, L);
  while (digits.length < L) digits.push(0);
  return digits;
}
