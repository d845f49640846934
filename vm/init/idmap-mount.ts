/**
 * Idmapped mounts: a copy of a mount whose stored ids appear shifted by a user namespace's map
 * (see vm/idmap.ts). runc 1.1 cannot make them and util-linux 2.38's mount has no option for
 * them, so three syscalls are made by Perl's `syscall` (Perl is in every Debian host's
 * perl-base): open_tree(OPEN_TREE_CLONE) of the source, mount_setattr(MOUNT_ATTR_IDMAP) with the
 * user namespace's fd, move_mount onto the target. x86_64 syscall numbers.
 */
import { runCommand } from '../command.ts';

const IDMAP = String.raw`
my ($source, $target, $userns) = @ARGV;
sub str { my $copy = $_[0]; return $copy; }
my $tree = syscall(428, -100, str($source), 1 | 0x80000);
die "open_tree $source: $!\n" if $tree < 0;
open(my $ns, '<', $userns) or die "open $userns: $!\n";
my $attr = pack('QQQQ', 0x100000, 0, 0, fileno($ns));
syscall(442, $tree, str(''), 0x1000, $attr, 32) == 0 or die "mount_setattr: $!\n";
syscall(429, $tree, str(''), -100, str($target), 4) == 0 or die "move_mount $target: $!\n";
`;

/** Mounts a copy of the mount at `source` on `target`, its ids mapped through the user namespace at `userns`. */
export async function idmapMount(source: string, target: string, userns: string): Promise<void> {
  await runCommand('perl', ['-e', IDMAP, source, target, userns]);
}
