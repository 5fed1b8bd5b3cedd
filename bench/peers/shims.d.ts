// core-js ships no type declarations; the iterator-helpers entry is imported
// only for its side effect (jaxjs.ts).
declare module "core-js/actual/iterator/index.js";
