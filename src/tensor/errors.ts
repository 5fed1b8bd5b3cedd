/**
 * Every error the library throws on bad input is an AttendError, whose message names the function,
 * the argument, what was seen and what was expected.
 */
export class AttendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit together: wrong rank, mismatched dims, masks that do not broadcast. */
export class ShapeError extends AttendError {}

/** A value outside what the argument accepts: a NaN scale, a probability outside [0, 1), a bad dtype. */
export class ArgumentError extends AttendError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
