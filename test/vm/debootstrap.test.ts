import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InstallerOutput } from '../../vm/debootstrap.ts';

test("debootstrap's installer protocol becomes formatted lines with the whole build's percentage, which never goes back", () => {
  const seen: Array<[string, number | undefined]> = [];
  const output = new InstallerOutput((text, percent) => seen.push([text, percent]));
  const lines = [
    'I: RETRIEVING', 'IA: InRelease', 'IA: ', 'IF: Retrieving %s %s',
    'P: 0 100 DOWNREL', 'PF: Downloading Release file',
    'P: 25 100 DOWNDEBS', 'PA: libc6', 'PF: Downloading %s',
    'W: SOMETHING', 'WA: 50%', 'WF: disk at %s',
    'P: 10 100 DOWNDEBS', 'PF: stale progress',
    'dpkg: some raw output',
    'P: 3 4 CONFBASE', 'PA: base-files', 'PA: 12', 'PF: Configuring %s (%d)',
    'P: 9 9 SOMETHINGNEW', 'PF: unknown stage',
    'E: NOGETREL', 'EA: http://mirror/Release', 'EF: Failed getting release file %s (100%% sure)',
  ];
  for (const line of lines) output.line(line);
  assert.deepEqual(seen, [
    ['Retrieving InRelease', undefined],
    ['Downloading Release file', 0],
    // Downloading the packages is the sixth stage: 8 % before it, a quarter of its 30 %.
    ['Downloading libc6', 15],
    ['warning: disk at 50%', 15],
    ['stale progress', 15],
    // The last stage: 85 % before it, three quarters of its 15 %.
    ['Configuring base-files (12)', 96],
    ['unknown stage', 96],
    ['error: Failed getting release file http://mirror/Release (100% sure)', 96],
  ]);
  assert.deepEqual(output.tail, ['stale progress', 'dpkg: some raw output', 'Configuring base-files (12)', 'unknown stage', 'error: Failed getting release file http://mirror/Release (100% sure)']);
});
