/**
 * Secret values (img_passwd, img_passwd_hash, auth_keys, cloud_userdata, os_product_key).
 *
 * Redaction by construction: a Secret prints as "[redacted]" however it is turned into text
 * (String(), template literals, JSON.stringify, util.inspect, pino). The clear text is only
 * reachable through reveal(), which the code calls where the value is really needed (the
 * config document handed to the helper VM). Every secret's text is also registered so that
 * the log, monitor and error sinks can scrub it from any text that still carries it.
 */

const REDACTED = '[redacted]';
const registered = new Set<string>();

/** Values shorter than this are not scrubbed from free text (they would mangle every line). */
const MIN_SCRUB_LENGTH = 4;

export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    registerSecretText(value);
  }

  reveal(): string {
    return this.#value;
  }

  get length(): number {
    return this.#value.length;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Secret(${REDACTED})`;
  }
}

/** Registers a text (and each of its lines) as secret so that scrub() removes it. */
function registerSecretText(text: string): void {
  const candidates = [text, ...text.split(/\r?\n/)];
  for (const candidate of candidates) {
    const trimmed = candidate.trim();
    if (trimmed.length >= MIN_SCRUB_LENGTH) registered.add(trimmed);
  }
}

/** Replaces every registered secret text inside `text` by "[redacted]". */
export function scrub(text: string): string {
  if (registered.size === 0) return text;
  let out = text;
  for (const value of registered) {
    if (out.includes(value)) out = out.split(value).join(REDACTED);
    // Secrets can reach text JSON-escaped (quotes, backslashes, newlines).
    const escaped = JSON.stringify(value).slice(1, -1);
    if (escaped !== value && out.includes(escaped)) out = out.split(escaped).join(REDACTED);
  }
  return out;
}

/** For tests: forget every registered secret text. */
export function clearRegisteredSecrets(): void {
  registered.clear();
}
