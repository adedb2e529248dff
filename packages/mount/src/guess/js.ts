/**
 * The modules a JavaScript source names, found by a scan (not a parse): a match in a comment
 * or a string only costs a wrong guess's bytes. Linear in the text; at most MAX_SPECIFIERS.
 */

/** `require("x")`, `import … from "x"`, `import("x")`, `export … from "x"`, `import "x"`. */
const SPECIFIER =
  /(?:\brequire\s*\(\s*|\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])([^"'\n\\]{1,300})\1/g;
const MAX_SPECIFIERS = 256;

/** The specifiers a JavaScript source names (a scan: a match in a comment only costs bytes). */
export function jsSpecifiers(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(SPECIFIER)) {
    out.add(m[2]);
    if (out.size >= MAX_SPECIFIERS) break;
  }
  return [...out];
}
