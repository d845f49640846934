/** A camelCase identifier: a lowercase word followed by capitalised ones (`lastSync`, `dbVersion`). */
const CAMEL = /^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$/;

/**
 * The value as the API answers it: snake_case keys like the rest of Sprites' API. Only camelCase
 * keys change, so ids, codes and names used as keys (peer ids, `ERR_*`, sprite names) stay as they
 * are; bigints (HLC timestamps) become strings.
 */
export function snakeKeys(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[CAMEL.test(key) ? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : key] = snakeKeys(item);
  }
  return out;
}
