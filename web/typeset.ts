/**
 * A Vite plugin that typesets the explorer's formulas at build time (and in the dev server), so
 * that opening a lesson runs no KaTeX: typesetting a page's formulas took a long task of its own
 * on a slow machine, and KaTeX's code is no longer in the bundle (its CSS and fonts still are).
 *
 * In every module of web/src that imports formula() from ui/math.ts, each call's TeX (a string, a
 * String.raw`…` or an array of them, written out in the call) goes through katex.renderToString
 * with the options formula() used to give katex.render; the module then hands the HTML to
 * typeset() of ui/math.ts when it is loaded, before any page mounts, and formula() puts it in the
 * page. A call whose TeX is computed fails the build: it could only be typeset in the browser.
 */
import { fileURLToPath } from "node:url";
import katex from "katex";
import { type Plugin, normalizePath } from "vite";

// forward slashes on every platform, as Vite writes module ids (fileURLToPath gives backslashes on Windows)
const MATH = normalizePath(fileURLToPath(new URL("src/ui/math.ts", import.meta.url)));
const SRC = normalizePath(fileURLToPath(new URL("src/", import.meta.url)));

/** One formula (one part of a formula in parts) typeset: [tex, display, html], as typeset() takes them. */
type Typeset = [string, boolean, string];

/** The HTML and MathML that katex.render(tex, el, options) puts into el. */
const renderFormula = (tex: string, display: boolean): string =>
  katex.renderToString(tex, { displayMode: display, throwOnError: true, output: "htmlAndMathml" });

/** The few ESTree nodes read here. */
interface Node { type: string; start: number; [key: string]: unknown }

/** The text of a string written out: "…", `…` or String.raw`…` with no ${} in it; null otherwise. */
function literal(n: Node): string | null {
  if (n.type === "Literal" && typeof n.value === "string") return n.value;
  const quasi = (t: Node): { raw: string; cooked: string | null } | null => {
    const q = t.quasis as { value: { raw: string; cooked: string | null } }[];
    return (t.expressions as Node[]).length === 0 ? q[0].value : null;
  };
  if (n.type === "TemplateLiteral") return quasi(n)?.cooked ?? null;
  const tag = n.tag as Node | undefined;
  const isRaw = n.type === "TaggedTemplateExpression" && tag?.type === "MemberExpression"
    && (tag.object as Node).type === "Identifier" && (tag.object as { name: string }).name === "String"
    && (tag.property as { name?: string }).name === "raw";
  return isRaw ? (quasi(n.quasi as Node)?.raw ?? null) : null;
}

/** Every node under `n`, depth first. */
function* nodes(n: unknown): Generator<Node> {
  if (Array.isArray(n)) for (const x of n) yield* nodes(x);
  else if (n !== null && typeof n === "object") {
    if (typeof (n as Node).type === "string") yield n as Node;
    for (const v of Object.values(n)) if (v !== null && typeof v === "object") yield* nodes(v);
  }
}

export function typesetFormulas(): Plugin {
  return {
    name: "attend:typeset-formulas",
    async transform(code, id) {
      if (!id.startsWith(SRC) || !id.endsWith(".ts") || id === MATH || !code.includes("formula")) return null;
      const program = this.parse(code) as unknown as Node;
      // the local names of formula imported from ui/math.ts, and the specifier the module used for it
      const names = new Set<string>();
      let from = "";
      for (const decl of program.body as Node[]) {
        if (decl.type !== "ImportDeclaration") continue;
        const source = (decl.source as { value: string }).value;
        for (const sp of decl.specifiers as Node[]) {
          if (sp.type !== "ImportSpecifier" || (sp.imported as { name: string }).name !== "formula") continue;
          if ((await this.resolve(source, id))?.id !== MATH) continue;
          names.add((sp.local as { name: string }).name);
          from = source;
        }
      }
      if (names.size === 0) return null;
      const typeset: Typeset[] = [];
      const where = (n: Node): string => `${id}:${code.slice(0, n.start).split("\n").length}`;
      for (const call of nodes(program)) {
        const callee = call.callee as Node | undefined;
        if (call.type !== "CallExpression" || callee?.type !== "Identifier" || !names.has(callee.name as string)) continue;
        const [texArg, displayArg] = call.arguments as Node[];
        if (displayArg && !(displayArg.type === "Literal" && typeof displayArg.value === "boolean")) {
          this.error(`typesetFormulas: formula()'s display argument at ${where(displayArg)} must be written out as true or false, so that the formula can be typeset at build time`);
        }
        const display = displayArg ? (displayArg.value as boolean) : true;
        // formula([a, b]) typesets each part on its own, in display mode
        const parts: [Node, boolean][] = texArg?.type === "ArrayExpression"
          ? (texArg.elements as Node[]).map((e) => [e, true])
          : [[texArg, display]];
        for (const [part, partDisplay] of parts) {
          const tex = part ? literal(part) : null;
          if (tex === null) {
            this.error(`typesetFormulas: the TeX of formula() at ${where(part ?? call)} must be written out (a string, or String.raw\`…\` with no \${} in it), so that it is typeset at build time; this is ${part?.type ?? "missing"}`);
          }
          typeset.push([tex, partDisplay, renderFormula(tex, partDisplay)]);
        }
      }
      if (typeset.length === 0) return null;
      // appended, so the module's lines (and its source map) stay as they are; it runs when the module is loaded
      return {
        code: `${code}\nimport { typeset as __typesetFormulas } from ${JSON.stringify(from)};\n__typesetFormulas(${JSON.stringify(typeset)});\n`,
        map: null,
      };
    },
  };
}
