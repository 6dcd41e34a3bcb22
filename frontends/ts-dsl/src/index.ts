/** Placeholder until the package lands. */
export const PACKAGE = '@kiln/ts-dsl';
