/**
 * A small, strict XML reader and writer for Windows answer files: elements, attributes,
 * text, CDATA, comments and processing instructions. No DTDs, no external entities, only
 * the five predefined entities and character references. Anything malformed is an
 * XmlError naming the line and what is wrong. Whitespace and comments are kept, so a
 * document read and written back changes only where it was edited.
 */
import { TaskError } from '../exec.ts';

export class XmlError extends TaskError {}

export interface XmlElement {
  kind: 'element';
  name: string;
  attributes: Array<[string, string]>;
  children: XmlNode[];
}

export type XmlNode =
  | XmlElement
  | { kind: 'text'; text: string }
  | { kind: 'cdata'; text: string }
  | { kind: 'comment'; text: string }
  | { kind: 'pi'; target: string; body: string };

export interface XmlDocument {
  /** Comments and processing instructions before the root element (the XML declaration is rewritten). */
  prolog: XmlNode[];
  root: XmlElement;
}

const NAME = /^[A-Za-z_][\w.:-]*$/;
const ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Text of a file that may start with a UTF-8 or UTF-16 byte-order mark. */
export function decodeXmlBytes(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return bytes.subarray(2).toString('utf16le');
  if (bytes[0] === 0xfe && bytes[1] === 0xff) {
    // An odd last byte is no character (as for UTF-16LE, whose decoder drops it).
    const swapped = Buffer.from(bytes.subarray(2, bytes.length - (bytes.length % 2)));
    swapped.swap16();
    return swapped.toString('utf16le');
  }
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return bytes.subarray(3).toString('utf8');
  return bytes.toString('utf8');
}

class Reader {
  pos = 0;
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  fail(what: string): never {
    const line = this.text.slice(0, this.pos).split('\n').length;
    throw new XmlError(`line ${line}: ${what}`);
  }

  startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  expect(s: string): void {
    if (!this.startsWith(s)) this.fail(`expected '${s}'`);
    this.pos += s.length;
  }

  until(end: string, what: string): string {
    const at = this.text.indexOf(end, this.pos);
    if (at < 0) this.fail(`unterminated ${what}`);
    const out = this.text.slice(this.pos, at);
    this.pos = at + end.length;
    return out;
  }

  skipSpace(): string {
    const start = this.pos;
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] as string)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  name(): string {
    const m = /^[^\s/>=<"'&]+/.exec(this.text.slice(this.pos, this.pos + 256));
    const name = m?.[0] ?? '';
    if (!NAME.test(name)) this.fail(name === '' ? 'expected a name' : `invalid name '${name}'`);
    this.pos += name.length;
    return name;
  }
}

function unescapeText(r: Reader, raw: string): string {
  return raw.replace(/&([^;&\s]*);?/g, (whole, ref: string) => {
    if (!whole.endsWith(';')) r.fail(`unterminated entity reference '${whole}'`);
    if (ref in ENTITIES) return ENTITIES[ref] as string;
    const m = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(ref);
    if (!m) r.fail(`unknown entity '&${ref};' (only the predefined entities and character references are allowed)`);
    const code = ref.startsWith('#x') ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    if (code === 0 || code > 0x10ffff) r.fail(`invalid character reference '&${ref};'`);
    return String.fromCodePoint(code);
  });
}

function readMisc(r: Reader, into: XmlNode[]): boolean {
  if (r.startsWith('<!--')) {
    r.pos += 4;
    const text = r.until('-->', 'comment');
    if (text.includes('--')) r.fail("'--' inside a comment");
    into.push({ kind: 'comment', text });
    return true;
  }
  if (r.startsWith('<?')) {
    const start = r.pos;
    r.pos += 2;
    const target = r.name();
    const body = r.until('?>', 'processing instruction');
    if (target.toLowerCase() !== 'xml') into.push({ kind: 'pi', target, body });
    else if (start !== 0) r.fail('the XML declaration must come first');
    return true;
  }
  if (r.startsWith('<!DOCTYPE') || r.startsWith('<!ENTITY'))
    r.fail('document type declarations are not allowed in an answer file');
  return false;
}

function readElement(r: Reader, depth: number): XmlElement {
  if (depth > 100) r.fail('elements nested too deeply');
  r.expect('<');
  const name = r.name();
  const attributes: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (;;) {
    const space = r.skipSpace();
    if (r.startsWith('/>')) {
      r.pos += 2;
      return { kind: 'element', name, attributes, children: [] };
    }
    if (r.startsWith('>')) {
      r.pos += 1;
      break;
    }
    if (space === '') r.fail(`expected whitespace, '>' or '/>' in <${name}>`);
    const attr = r.name();
    r.skipSpace();
    r.expect('=');
    r.skipSpace();
    const quote = r.text[r.pos];
    if (quote !== '"' && quote !== "'") r.fail(`attribute ${attr} of <${name}> has no quoted value`);
    r.pos += 1;
    const raw = r.until(quote, `attribute ${attr}`);
    if (raw.includes('<')) r.fail(`'<' in the value of attribute ${attr}`);
    if (seen.has(attr)) r.fail(`attribute ${attr} repeated in <${name}>`);
    seen.add(attr);
    attributes.push([attr, unescapeText(r, raw)]);
  }
  const children: XmlNode[] = [];
  for (;;) {
    if (r.pos >= r.text.length) r.fail(`<${name}> is not closed`);
    if (r.startsWith('</')) {
      r.pos += 2;
      const closing = r.name();
      if (closing !== name) r.fail(`</${closing}> closes <${name}>`);
      r.skipSpace();
      r.expect('>');
      return { kind: 'element', name, attributes, children };
    }
    if (r.startsWith('<![CDATA[')) {
      r.pos += 9;
      children.push({ kind: 'cdata', text: r.until(']]>', 'CDATA section') });
    } else if (readMisc(r, children)) {
      // comment or processing instruction
    } else if (r.startsWith('<')) {
      children.push(readElement(r, depth + 1));
    } else {
      const at = r.text.indexOf('<', r.pos);
      const raw = r.text.slice(r.pos, at < 0 ? r.text.length : at);
      if (raw.includes(']]>')) r.fail("']]>' in text");
      r.pos += raw.length;
      children.push({ kind: 'text', text: unescapeText(r, raw) });
    }
  }
}

export function parseXml(text: string): XmlDocument {
  const r = new Reader(text.startsWith('\ufeff') ? text.slice(1) : text);
  const prolog: XmlNode[] = [];
  for (;;) {
    r.skipSpace();
    if (!readMisc(r, prolog)) break;
  }
  if (!r.startsWith('<')) r.fail(r.pos >= r.text.length ? 'no root element' : 'text before the root element');
  const root = readElement(r, 0);
  for (;;) {
    r.skipSpace();
    if (r.pos >= r.text.length) break;
    if (!readMisc(r, [])) r.fail('content after the root element');
  }
  return { prolog, root };
}

const escapeText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escapeAttr = (s: string) => escapeText(s).replace(/"/g, '&quot;');

function writeNode(node: XmlNode): string {
  switch (node.kind) {
    case 'text':
      return escapeText(node.text);
    case 'cdata':
      return `<![CDATA[${node.text}]]>`;
    case 'comment':
      return `<!--${node.text}-->`;
    case 'pi':
      return `<?${node.target}${node.body}?>`;
    case 'element': {
      const attrs = node.attributes.map(([k, v]) => ` ${k}="${escapeAttr(v)}"`).join('');
      if (node.children.length === 0) return `<${node.name}${attrs} />`;
      return `<${node.name}${attrs}>${node.children.map(writeNode).join('')}</${node.name}>`;
    }
  }
}

/** The document as UTF-8 text with an XML declaration. */
export function writeXml(doc: XmlDocument): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n${doc.prolog.map((n) => `${writeNode(n)}\n`).join('')}${writeNode(doc.root)}\n`;
}

/** Local part of a qualified name (`wcm:action` → `action`). */
export function localName(name: string): string {
  const i = name.indexOf(':');
  return i < 0 ? name : name.slice(i + 1);
}

export function elementChildren(el: XmlElement, local?: string): XmlElement[] {
  return el.children.filter(
    (c): c is XmlElement => c.kind === 'element' && (local === undefined || localName(c.name) === local),
  );
}

export function attribute(el: XmlElement, local: string): string | undefined {
  return el.attributes.find(([k]) => localName(k) === local)?.[1];
}

export function textOf(el: XmlElement): string {
  return el.children
    .map((c) => (c.kind === 'text' || c.kind === 'cdata' ? c.text : c.kind === 'element' ? textOf(c) : ''))
    .join('');
}

export function element(name: string, attributes: Array<[string, string]> = [], children: XmlNode[] = []): XmlElement {
  return { kind: 'element', name, attributes, children };
}

export function textElement(name: string, text: string, attributes: Array<[string, string]> = []): XmlElement {
  return element(name, attributes, [{ kind: 'text', text }]);
}

/** Replaces the element's content by one text node. */
export function setText(el: XmlElement, text: string): void {
  el.children = [{ kind: 'text', text }];
}

/**
 * Appends a child, indented like its siblings when the element is laid out on lines
 * (so hand-written answer files stay readable).
 */
export function appendChild(parent: XmlElement, child: XmlElement, depth: number): void {
  const indent = '    ';
  const last = parent.children.at(-1);
  const trailing = last?.kind === 'text' && /^\s*$/.test(last.text) ? last : undefined;
  if (trailing) parent.children.pop();
  parent.children.push({ kind: 'text', text: `\n${indent.repeat(depth + 1)}` }, child, {
    kind: 'text',
    text: `\n${indent.repeat(depth)}`,
  });
}
