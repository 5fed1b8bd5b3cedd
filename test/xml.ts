/**
 * A small strict XML parser for tests: elements, attributes, text, comments, the XML declaration and
 * the five named entities plus numeric references. It throws on anything not well formed
 * (mismatched or unclosed tags, a bare "<" or "&", unquoted or repeated attributes, two roots).
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = /^[A-Za-z_:][\w.:-]*/;
const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decode(s: string, at: number): string {
  return s.replace(/&([^;\s]*);?/g, (m, body: string) => {
    if (!m.endsWith(";")) throw new Error(`xml: bare "&" near offset ${at}`);
    if (body in ENTITIES) return ENTITIES[body];
    const num = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(body);
    if (num) return String.fromCodePoint(body[1] === "x" ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10));
    throw new Error(`xml: unknown entity &${body}; near offset ${at}`);
  });
}

export function parseXml(src: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  const fail = (msg: string): never => {
    throw new Error(`xml: ${msg} at offset ${i}`);
  };
  if (src.startsWith("<?xml")) {
    const end = src.indexOf("?>");
    if (end < 0) fail("unterminated declaration");
    i = end + 2;
  }
  while (i < src.length) {
    if (src.startsWith("<!--", i)) {
      const end = src.indexOf("-->", i);
      if (end < 0) fail("unterminated comment");
      i = end + 3;
      continue;
    }
    if (src[i] === "<" && src[i + 1] === "/") {
      const m = NAME.exec(src.slice(i + 2));
      if (!m) fail("bad closing tag");
      const name = m![0];
      i += 2 + name.length;
      while (/\s/.test(src[i])) i++;
      if (src[i] !== ">") fail(`closing tag </${name}> not closed`);
      i++;
      const open = stack.pop();
      if (!open || open.name !== name) fail(`</${name}> closes <${open ? open.name : "nothing"}>`);
      continue;
    }
    if (src[i] === "<") {
      const m = NAME.exec(src.slice(i + 1));
      if (!m) fail("bad tag name");
      const el: XmlElement = { name: m![0], attrs: {}, children: [], text: "" };
      i += 1 + el.name.length;
      for (;;) {
        const ws = /^\s*/.exec(src.slice(i))![0].length;
        i += ws;
        if (src.startsWith("/>", i) || src[i] === ">") break;
        if (ws === 0) fail("attributes must be separated by white space");
        const a = NAME.exec(src.slice(i));
        if (!a) fail(`bad attribute in <${el.name}>`);
        i += a![0].length;
        if (src[i] !== "=") fail(`attribute ${a![0]} has no value`);
        const q = src[i + 1];
        if (q !== '"' && q !== "'") fail(`attribute ${a![0]} is not quoted`);
        const end = src.indexOf(q, i + 2);
        if (end < 0) fail("unterminated attribute value");
        const raw = src.slice(i + 2, end);
        if (raw.includes("<")) fail(`"<" inside attribute ${a![0]}`);
        if (a![0] in el.attrs) fail(`repeated attribute ${a![0]}`);
        el.attrs[a![0]] = decode(raw, i);
        i = end + 1;
      }
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else if (root) fail("a second root element");
      else root = el;
      if (src.startsWith("/>", i)) i += 2;
      else {
        i += 1;
        stack.push(el);
      }
      continue;
    }
    const next = src.indexOf("<", i);
    const end = next < 0 ? src.length : next;
    const text = src.slice(i, end);
    if (stack.length === 0) {
      if (text.trim() !== "") fail("text outside the root element");
    } else stack[stack.length - 1].text += decode(text, i);
    i = end;
  }
  if (stack.length > 0) fail(`<${stack[stack.length - 1].name}> is never closed`);
  if (!root) fail("no root element");
  return root!;
}

/** Every element in document order. */
export function allElements(el: XmlElement): XmlElement[] {
  return [el, ...el.children.flatMap(allElements)];
}
