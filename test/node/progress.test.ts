import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressPrinter } from '../../node/progress.ts';

test('progress: a line per message with its percentage in logs, one redrawn bar on a terminal', () => {
  let log = '';
  const lines = progressPrinter({ write: (text: string) => { log += text; } }, 'image ');
  lines.update('starting');
  lines.update('half', 50);
  lines.update('no new figure');
  lines.done();
  assert.equal(log, 'image [    ] starting\nimage [ 50%] half\nimage [ 50%] no new figure\n');

  let screen = '';
  const bar = progressPrinter({ isTTY: true, columns: 40, write: (text: string) => { screen += text; } });
  bar.update('a very long message that does not fit on the line', 25);
  bar.update('done', 100);
  bar.done();
  const frames = screen.split('\r\x1b[K').filter(Boolean);
  assert.equal(frames.length, 2);
  assert.equal(frames[0], '[######..................]  25% a very ', 'cut to the terminal width');
  assert.equal(frames[1], '[########################] 100% done\n');
});
