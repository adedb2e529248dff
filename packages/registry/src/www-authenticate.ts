/** One challenge of a WWW-Authenticate header: a scheme and its parameters (keys lower-case). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const TOKEN68 = /[A-Za-z0-9\-._~+/]+=*/y;

/**
 * Parses RFC 9110 challenges: `Bearer realm="…",service="…",scope="a b"`, several challenges
 * per header, and several headers. Quoted values may hold commas (scope "pull,push").
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const headers = Array.isArray(header) ? header : [header];
  return headers.flatMap(parseOne);
}

function parseOne(s: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const ws = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return undefined;
    i = re.lastIndex;
    return m[0];
  };
  while (i < s.length) {
    ws();
    if (s[i] === ",") {
      i++;
      continue;
    }
    const scheme = match(TOKEN);
    if (scheme === undefined) break; // garbage: keep what parsed so far
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    ws();
    // Parameters until the next "token SP" that starts a new challenge.
    for (;;) {
      const start = i;
      ws();
      const key = match(TOKEN);
      if (key === undefined) {
        const t68 = match(TOKEN68);
        if (t68 !== undefined) challenge.params.token68 = t68;
        break;
      }
      ws();
      if (s[i] !== "=") {
        i = start; // a new scheme
        break;
      }
      i++;
      ws();
      let value: string;
      if (s[i] === '"') {
        i++;
        value = "";
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        value = match(TOKEN) ?? "";
      }
      challenge.params[key.toLowerCase()] = value;
      ws();
      if (s[i] === ",") {
        i++;
        continue;
      }
      break;
    }
  }
  return out;
}
