/** What a filter can look at in a snapshot (containerd's snapshot adaptor fields). */
export interface Filterable {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
}

type Clause = { field: string[]; op: "==" | "!=" | "~=" | "present"; value: string };

// A field name, or a quoted one (label keys with dots); `.` separates the parts.
const FIELD = /^(?:"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_/-]+))/;

/**
 * containerd's filter syntax (filters/parser.go), the subset its clients send: a filter is
 * clauses joined by `,` (all must hold), several filters are alternatives; a clause is a
 * field path (`name`, `parent`, `kind`, `labels."key"` or `labels.key`) with `==`, `!=`, `~=`
 * and a plain or quoted value, or the path alone (present). Anything else is refused.
 */
export function parseFilter(text: string): Clause[] {
  const clauses: Clause[] = [];
  let rest = text.trim();
  while (rest !== "") {
    const field: string[] = [];
    for (;;) {
      const m = FIELD.exec(rest);
      if (!m)
        throw new Error(
          `filter ${JSON.stringify(text)}: expected a field at ${JSON.stringify(rest)}`,
        );
      field.push(m[1] !== undefined ? unquote(m[1]) : m[2]);
      rest = rest.slice(m[0].length);
      if (!rest.startsWith(".") || field.length >= 2) break;
      rest = rest.slice(1);
    }
    let op: Clause["op"] = "present";
    let value = "";
    const o = /^\s*(==|!=|~=)\s*/.exec(rest);
    if (o) {
      op = o[1] as Clause["op"];
      rest = rest.slice(o[0].length);
      const v = /^(?:"((?:[^"\\]|\\.)*)"|([^,"]*))/.exec(rest) as RegExpExecArray;
      value = v[1] !== undefined ? unquote(v[1]) : v[2].trim();
      rest = rest.slice(v[0].length);
      if (op === "~=") {
        try {
          new RegExp(value);
        } catch {
          throw new Error(
            `filter ${JSON.stringify(text)}: ${JSON.stringify(value)} is not a pattern`,
          );
        }
      }
    }
    clauses.push({ field, op, value });
    rest = rest.trim();
    if (rest.startsWith(",")) rest = rest.slice(1).trim();
    else if (rest !== "")
      throw new Error(`filter ${JSON.stringify(text)}: unexpected ${JSON.stringify(rest)}`);
  }
  return clauses;
}

function unquote(s: string): string {
  return s.replace(/\\(.)/g, "$1");
}

function fieldOf(s: Filterable, field: string[]): string | undefined {
  if (field[0] === "labels") return field.length === 2 ? s.labels[field[1]] : undefined;
  if (field.length !== 1) return undefined;
  if (field[0] === "name") return s.name;
  if (field[0] === "parent") return s.parent;
  if (field[0] === "kind") return s.kind;
  return undefined;
}

/** Whether `s` passes any of the filters (no filter: everything passes). */
export function matches(s: Filterable, filters: Clause[][]): boolean {
  if (filters.length === 0) return true;
  return filters.some((clauses) =>
    clauses.every((c) => {
      const v = fieldOf(s, c.field);
      if (c.op === "present") return v !== undefined && v !== "";
      if (c.op === "==") return v === c.value;
      if (c.op === "!=") return v !== c.value;
      return v !== undefined && new RegExp(c.value).test(v);
    }),
  );
}
