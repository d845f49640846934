// The escape suite's probe: a Perl script (Debian's perl-base has `syscall`) that tries each door
// out of a sprite from inside it and prints one line per try: `<name> ok` when the call succeeded,
// `<name> <errno>` when it failed. Each try runs in a forked child, so one that succeeds (a new
// namespace, say) cannot change what the next one sees. x86_64 syscall numbers.
// Usage: perl -e ESCAPE_PROBE <host pid that must stay out of reach>
export const ESCAPE_PROBE = String.raw`
$| = 1;
my $hostpid = 0 + ($ARGV[0] // 1);
sub report { my ($name, $ret) = @_; print "$name ", ($ret == -1 ? 0 + $! : 'ok'), "\n"; }
sub try {
  my ($name, $code) = @_;
  my $pid = fork();
  if ($pid == 0) { $! = 0; report($name, $code->()); syscall(231, 0); }
  waitpid($pid, 0);
}
# syscall passes a string as a pointer and wants it writable: literals are read-only, copies are not.
sub str { my $copy = $_[0]; return $copy; }
sub open_write { my ($path) = @_; open(my $fh, '>', $path) or return -1; print $fh "1\n"; close($fh) or return -1; return 0; }
my %flags = (newuser => 0x10000000, newnet => 0x40000000, newns => 0x20000, newpid => 0x20000000,
  newuts => 0x04000000, newipc => 0x08000000, newcgroup => 0x02000000);
my $usernet = $flags{newuser} | $flags{newnet};
# Controls: what a sprite must still be able to do, so a filter that refuses everything fails the suite.
try('control_fork', sub { my $c = syscall(56, 17, 0, 0, 0, 0); syscall(231, 0) if $c == 0; waitpid($c, 0) if $c > 0; $c });
try('control_tcp_socket', sub { syscall(41, 2, 1, 0) });
try('control_personality_query', sub { syscall(135, 0xffffffff) });
# Namespaces: unshare with each flag, clone with user+net, clone3 (ENOSYS), setns.
for my $name (sort keys %flags) { try("unshare_$name", sub { syscall(272, $flags{$name}) }); }
try('unshare_newuser_newnet', sub { syscall(272, $usernet) });
try('clone_newuser_newnet', sub { my $c = syscall(56, $usernet | 17, 0, 0, 0, 0); syscall(231, 0) if $c == 0; waitpid($c, 0) if $c > 0; $c });
try('clone_newns', sub { my $c = syscall(56, $flags{newns} | 17, 0, 0, 0, 0); syscall(231, 0) if $c == 0; waitpid($c, 0) if $c > 0; $c });
try('clone3_plain', sub { my $a = pack('Q8', 0, 0, 0, 0, 17, 0, 0, 0); my $c = syscall(435, $a, 64); syscall(231, 0) if $c == 0; $c });
try('clone3_newuser', sub { my $a = pack('Q8', $usernet, 0, 0, 0, 17, 0, 0, 0); my $c = syscall(435, $a, 64); syscall(231, 0) if $c == 0; $c });
try('setns_net', sub { open(my $ns, '<', '/proc/1/ns/net') or return -1; syscall(308, fileno($ns), 0) });
# io_uring.
try('io_uring_setup', sub { my $p = "\0" x 120; syscall(425, 1, $p) });
try('io_uring_register', sub { syscall(427, 0, 0, 0, 0) });
# Mounts.
try('mount_tmpfs', sub { syscall(165, str('none'), str('/tmp'), str('tmpfs'), 0, 0) });
try('umount_proc', sub { syscall(166, str('/proc'), 2) });
try('fsopen', sub { syscall(430, str('tmpfs'), 0) });
try('open_tree', sub { syscall(428, -100, str('/'), 1) });
try('pivot_root', sub { syscall(155, str('/'), str('/')) });
# Kernel modules, kexec, bpf, perf, userfaultfd, keyrings.
try('init_module', sub { my $m = "\0" x 64; syscall(175, $m, 64, str('')) });
try('finit_module', sub { open(my $f, '<', '/dev/null') or return -1; syscall(313, fileno($f), str(''), 0) });
try('delete_module', sub { syscall(176, str('loop'), 0) });
try('kexec_load', sub { syscall(246, 0, 0, 0, 0) });
try('kexec_file_load', sub { syscall(320, 0, 0, 0, str(''), 0) });
try('bpf_map_create', sub { my $attr = pack('LLLL', 2, 4, 4, 1) . ("\0" x 56); syscall(321, 0, $attr, 72) });
try('perf_event_open', sub { my $attr = pack('LLQ', 1, 128, 0) . ("\0" x 112); syscall(298, $attr, 0, -1, -1, 0) });
try('userfaultfd', sub { syscall(323, 0) });
try('keyctl_session', sub { syscall(250, 0, -3, 1) });
try('add_key', sub { syscall(248, str('user'), str('probe'), str('data'), 4, -2) });
try('request_key', sub { syscall(249, str('user'), str('probe'), 0, 0) });
# Raw and vsock sockets: AF_PACKET, AF_INET raw (ICMP and IPPROTO_RAW), AF_VSOCK.
try('socket_packet_raw', sub { syscall(41, 17, 3, 0x0300) });
try('socket_inet_raw_icmp', sub { syscall(41, 2, 3, 1) });
try('socket_inet_raw', sub { syscall(41, 2, 3, 255) });
try('socket_vsock', sub { syscall(41, 40, 1, 0) });
# The host's clock, console, power, swap, ports, accounting, kernel log, hostname, device nodes.
try('clock_settime', sub { my $ts = pack('qq', 0, 0); syscall(227, 0, $ts) });
try('settimeofday', sub { my $tv = pack('qq', 0, 0); syscall(164, $tv, 0) });
try('reboot', sub { syscall(169, 0xfee1dead, 672274793, 0, 0) });
try('swapon', sub { syscall(167, str('/tmp/swap'), 0) });
try('iopl', sub { syscall(172, 3) });
try('acct', sub { syscall(163, 0) });
try('syslog_read_all', sub { my $b = "\0" x 64; syscall(103, 3, $b, 64) });
try('vhangup', sub { syscall(153) });
try('sethostname', sub { syscall(170, str('x'), 1) });
try('mknod_block', sub { syscall(133, str('/tmp/probe-sda'), 0060600, (8 << 8) | 0) });
try('open_by_handle_at', sub { my $h = pack('LL', 8, 1) . ("\0" x 8); syscall(304, -100, $h, 0) });
try('personality_no_randomize', sub { syscall(135, 0x0040000) });
# Writes to /proc and /sys, including raising its own memory limit.
try('write_sysrq_trigger', sub { open_write('/proc/sysrq-trigger') });
try('write_proc_sys', sub { open_write('/proc/sys/kernel/domainname') });
try('write_sys_kernel', sub { open_write('/sys/kernel/mm/transparent_hugepage/enabled') });
try('write_sys_uevent_helper', sub { open_write('/sys/kernel/uevent_helper') });
try('write_own_memory_limit', sub { open_write('/sys/fs/cgroup/memory/memory.limit_in_bytes') });
try('mkdir_cgroup', sub { mkdir('/sys/fs/cgroup/memory/probe') ? 0 : -1 });
# Processes outside the sprite: the host pid given on the command line.
try('ptrace_host_pid', sub { syscall(101, 16, $hostpid, 0, 0) });
try('kill_host_pid', sub { syscall(62, $hostpid, 0) });
try('pidfd_open_host_pid', sub { syscall(434, $hostpid, 0) });
`;

/** Parses the probe's output into name -> `ok` or an errno number. */
export function probeResults(stdout: string): Map<string, string> {
  const results = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^(\w+) (ok|\d+)$/.exec(line);
    if (match) results.set(match[1]!, match[2]!);
  }
  return results;
}
