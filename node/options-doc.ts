// The option table as text: `sprite help peer start` and README.md's configuration table.
import { listOptions, type ListedOption, type PeerOption, type Section } from './options.ts';

/** Lines README.md's configuration table sits between; `node scripts/readme-options.ts` rewrites what is inside. */
const README_MARKERS = {
  start: '<!-- options: generated from node/options.ts by `node scripts/readme-options.ts` -->',
  end: '<!-- end of options -->',
} as const;

/** Headings of the sections in help. */
const SECTION_TITLES: Readonly<Record<Section, string>> = {
  peer: 'peer', pool: 'warm pool and base image', mesh: 'mesh', storage: 'storage', proxy: 'edge proxy', sleep: 'sleep of idle sprites', sprite: 'each sprite', quota: 'org quotas (defaults)', egress: 'sprite network (egress)',
};

/** The flags of `sprite peer start` by section, each with its default and doc line, for `sprite help peer start`. */
export function optionHelp(): string[] {
  const lines = ['', 'flags (BYTES: a whole number or a binary size like 512MiB; SECONDS may have decimals):'];
  let section: Section | undefined;
  for (const { option } of listOptions()) {
    if (option.section !== section) {
      section = option.section;
      lines.push('', `${SECTION_TITLES[section]}:`);
    }
    lines.push(`  ${synopsis(option)}  (default ${plain(defaultOf(option))})`, `      ${plain(docOf(option))}`);
  }
  return [...lines, ''];
}

/** README.md's configuration table (markdown), one row per option in table order. */
export function readmeTable(): string {
  const rows = listOptions().map(({ option }: ListedOption) => `| ${cell(`\`${synopsis(option)}\``)} | ${cell(defaultOf(option))} | ${cell(docOf(option))} |`);
  return ['| flag | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** `readme` with the text between README_MARKERS replaced by the current table; throws when a marker is missing. */
export function withReadmeTable(readme: string): string {
  const start = readme.indexOf(README_MARKERS.start);
  const end = readme.indexOf(README_MARKERS.end);
  if (start < 0 || end < start) throw new Error('README.md lacks the options table markers');
  return `${readme.slice(0, start + README_MARKERS.start.length)}\n${readmeTable()}\n${readme.slice(end)}`;
}

/** `--flag PLACEHOLDER`, with `...` when it repeats. */
function synopsis(option: PeerOption<unknown, unknown>): string {
  return `--${option.flag} ${option.metavar ?? option.kind.metavar}${option.kind.repeatable ? '...' : ''}`;
}

/** The default as markdown: its own text, or the value shown by its kind. */
function defaultOf(option: PeerOption<unknown, unknown>): string {
  if (option.defaultText !== undefined) return option.defaultText;
  if (option.default === undefined || typeof option.default === 'function') return 'none';
  return `\`${option.kind.show(option.default)}\``;
}

function docOf(option: PeerOption<unknown, unknown>): string {
  return option.kind.repeatable ? `${option.doc} (repeatable)` : option.doc;
}

/** Markdown code spans as plain terminal text. */
function plain(markdown: string): string {
  return markdown.replaceAll('`', '');
}

/** A table cell: a pipe would end it. */
function cell(markdown: string): string {
  return markdown.replaceAll('|', '\\|');
}
