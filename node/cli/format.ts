// Plain-text rendering of API answers: aligned tables and key/value blocks.

/** Renders rows under headers as space-aligned columns, one line each, ending with a newline. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  const lines = all.map((row) =>
    headers
      .map((_, col) => {
        const cell = row[col] ?? '';
        // The last column is not padded, so lines carry no trailing spaces.
        return col === headers.length - 1 ? cell : cell.padEnd(widths[col] ?? 0);
      })
      .join('  ')
      .trimEnd(),
  );
  return lines.join('\n') + '\n';
}

/** Renders an object's fields as `key  value` lines, skipping undefined values. */
export function fields(record: Readonly<Record<string, unknown>>): string {
  const rows = Object.entries(record)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => [key, cell(value)] as const);
  return table(['', ''], rows).split('\n').slice(1).join('\n');
}

/** Renders one value for a table cell: strings as-is, null as '-', others as JSON. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Shortens an ISO timestamp to whole seconds (`2026-11-23T13:00:00Z`); other text is kept. */
export function time(iso: unknown): string {
  if (typeof iso !== 'string') return cell(iso);
  return iso.replace(/\.\d+Z$/, 'Z');
}

/** Quotes a command line for display: words with spaces or quotes get single quotes. */
export function commandLine(words: readonly string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Pretty JSON followed by a newline, for `--json`. */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}
