/** A stream progress goes to; terminals get a bar redrawn in place. */
interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const BAR = 24;

/** Shows progress messages; `done` ends the display. */
export interface ProgressPrinter {
  update(text: string, percent?: number): void;
  done(): void;
}

/**
 * Prints the progress of a long build. On a terminal: one line redrawn in place, a bar, the
 * percentage and the latest message. Elsewhere (logs, pipes): a line per message with its
 * percentage, so the output stays readable. `done` ends the redrawn line.
 */
export function progressPrinter(out: ProgressStream, prefix = ''): ProgressPrinter {
  let percent: number | undefined;
  let drawn = false;
  return {
    update(text, next) {
      if (next !== undefined) percent = next;
      const shown = percent === undefined ? '    ' : `${String(percent).padStart(3)}%`;
      if (!out.isTTY) {
        out.write(`${prefix}[${shown}] ${text}\n`);
        return;
      }
      const filled = Math.round(((percent ?? 0) * BAR) / 100);
      const line = `${prefix}[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ${shown} ${text}`;
      out.write(`\r\x1b[K${line.slice(0, Math.max(20, (out.columns || 80) - 1))}`);
      drawn = true;
    },
    done() {
      if (drawn) out.write('\n');
      drawn = false;
    },
  };
}
