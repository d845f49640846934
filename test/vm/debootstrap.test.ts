import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InstallerOutput } from '../../vm/debootstrap.ts';

test("debootstrap's installer protocol becomes formatted lines with a percentage that never goes back", () => {
  const seen: Array<[string, number | undefined]> = [];
  const output = new InstallerOutput((text, percent) => seen.push([text, percent]));
  const lines = [
    'I: RETRIEVING', 'IA: InRelease', 'IA: ', 'IF: Retrieving %s %s',
    'P: 0 100 DOWNREL', 'PF: Downloading Release file',
    'P: 25 100 DOWNDEBS', 'PA: libc6', 'PF: Downloading %s',
    'W: SOMETHING', 'WA: 50%', 'WF: disk at %s',
    'P: 10 100 DOWNDEBS', 'PF: stale progress',
    'dpkg: some raw output',
    'P: 3 4 CONFIGURING', 'PA: base-files', 'PA: 12', 'PF: Configuring %s (%d)',
    'E: NOGETREL', 'EA: http://mirror/Release', 'EF: Failed getting release file %s (100%% sure)',
  ];
  for (const line of lines) output.line(line);
  assert.deepEqual(seen, [
    ['Retrieving InRelease', undefined],
    ['Downloading Release file', 0],
    ['Downloading libc6', 25],
    ['warning: disk at 50%', 25],
    ['stale progress', 25],
    ['Configuring base-files (12)', 75],
    ['error: Failed getting release file http://mirror/Release (100% sure)', 75],
  ]);
  assert.deepEqual(output.tail, ['warning: disk at 50%', 'stale progress', 'dpkg: some raw output', 'Configuring base-files (12)', 'error: Failed getting release file http://mirror/Release (100% sure)']);
});
