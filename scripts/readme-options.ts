// Rewrites README.md's configuration table from the peer's option table (node/options.ts):
// `node scripts/readme-options.ts`. test/node/options.test.ts fails while the two differ.
import { readFile, writeFile } from 'node:fs/promises';
import { withReadmeTable } from '../node/options-doc.ts';

const file = new URL('../README.md', import.meta.url);
const readme = await readFile(file, 'utf8');
const updated = withReadmeTable(readme);
if (updated !== readme) await writeFile(file, updated);
process.stdout.write(updated === readme ? 'README.md: the configuration table is current\n' : 'README.md: configuration table rewritten\n');
