/**
 * Names from a layer are hostile: a newline would forge listing lines and an escape sequence
 * would reach the terminal. Human output quotes them as GNU ls does on a terminal
 * (`--quoting-style=shell-escape`): plain names stay as they are, names with shell
 * metacharacters are single-quoted, and control characters become `$'\n'`-style escapes, so
 * every name is one line and can be pasted back into a shell. `--json` output is escaped by
 * JSON itself.
 */
export function quoteName(name: string): string {
  if (name === "") return "''";
  if (SAFE.test(name)) return name;
  if (!UNPRINTABLE.test(name)) {
    if (!name.includes("'")) return `'${name}'`;
    if (!/["$`\\!]/.test(name)) return `"${name}"`;
    return `'${name.replaceAll("'", "'\\''")}'`;
  }
  // Printable runs in single quotes, everything else as $'...' escapes, concatenated.
  let out = "";
  let run = "";
  const flush = () => {
    if (run) out += `'${run.replaceAll("'", "'\\''")}'`;
    run = "";
  };
  for (const ch of name) {
    if (UNPRINTABLE_CHAR.test(ch)) {
      flush();
      out += `$'${escapeChar(ch)}'`;
    } else run += ch;
  }
  flush();
  return out;
}

// GNU ls leaves these unquoted (its shell-escape style's safe set).
const SAFE = /^[A-Za-z0-9_\-.,:/@%+=^~]+$/u;
// C0, DEL, C1, line/paragraph separators and bidirectional overrides (they reorder the text
// a terminal shows: "Trojan Source").
const UNPRINTABLE_CLASS =
  "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069";
const UNPRINTABLE = new RegExp(`[${UNPRINTABLE_CLASS}]`, "u");
const UNPRINTABLE_CHAR = new RegExp(`^[${UNPRINTABLE_CLASS}]$`, "u");

const NAMED: Record<string, string> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\v": "\\v",
  "\f": "\\f",
  "\r": "\\r",
};

function escapeChar(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const cp = ch.codePointAt(0) as number;
  if (cp < 0x80) return `\\${cp.toString(8).padStart(3, "0")}`;
  return `\\u${cp.toString(16).padStart(4, "0")}`;
}
