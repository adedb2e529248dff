import { type Body, discardBody, readErrorBody } from "./body.js";
import { RegistryError, type RegistryErrorKind } from "./errors.js";
import { isRetryableStatus, parseRetryAfter } from "./retry.js";
import type { RegistryStats } from "./stats.js";

interface OciErrors {
  errors?: { code?: string; message?: string; detail?: unknown }[];
}

function kindOf(status: number): RegistryErrorKind {
  if (status === 404) return "not-found";
  if (status === 401) return "unauthorized";
  if (status === 403) return "denied";
  if (status === 416) return "range";
  return "http";
}

/**
 * The error for an unexpected response, reading the registry's JSON error body when there is
 * one: "manifest unknown", "unauthorized: authentication required", "unexpected 500".
 */
export async function httpError(
  subject: string,
  response: {
    statusCode: number;
    headers: Record<string, string | string[] | undefined>;
    body: Body;
  },
  stats: readonly (RegistryStats | undefined)[],
  note?: string,
): Promise<RegistryError> {
  const status = response.statusCode;
  let text = "";
  // A 416's body is useless and, from distribution, truncated: do not wait for it.
  if (status === 416) discardBody(response.body);
  else text = await readErrorBody(response.body, stats);
  let code: string | undefined;
  let reason: string | undefined;
  try {
    const first = (JSON.parse(text) as OciErrors).errors?.[0];
    if (first?.code || first?.message) {
      code = first.code;
      const words = (first.code ?? "").toLowerCase().replace(/_/g, " ");
      const message = first.message ?? words;
      reason = words && !message.toLowerCase().startsWith(words) ? `${words}: ${message}` : message;
    }
  } catch {
    // not JSON: fall through to the status
  }
  if (status === 416) {
    const total = /\*\/(\d+)/.exec(String(response.headers["content-range"] ?? ""))?.[1];
    reason =
      total === undefined
        ? "range not satisfiable"
        : `range not satisfiable (blob is ${total} bytes)`;
  }
  reason ??=
    status === 404 ? "not found" : status === 401 ? "unauthorized" : `unexpected ${status}`;
  if (reason !== `unexpected ${status}` && status >= 500) reason = `${reason} (${status})`;
  if (note) reason = `${reason} (${note})`;
  const retryAfterMs =
    status === 429 || status === 503 ? parseRetryAfter(response.headers["retry-after"]) : undefined;
  return new RegistryError(subject, reason, {
    kind: kindOf(status),
    status,
    code,
    retryable: isRetryableStatus(status),
    retryAfterMs,
  });
}
