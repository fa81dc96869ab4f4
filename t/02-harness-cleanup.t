#!/usr/bin/perl

# The harness stops everything a test started, however the test ends: a
# child test script starts nginx (2 workers), redis-server, a fake server
# with a connection held open, a traffic loop through CG::fork_child (with
# a child of its own) and one it forked itself without telling CG, then
# dies, bails out, throws, or is sent SIGTERM, SIGINT or SIGHUP as prove or
# a terminal would; or it is killed by SIGKILL (no handler runs: what the
# harness started goes with it by the parent-death signal).  Each time the
# script's output ends promptly (a survivor holding it is what makes prove
# hang) and no process of its tree is left.  (Under SIGKILL only what the
# harness itself started has the parent-death signal: the script then
# starts no fake server and forks nothing on its own.)

use strict;
use warnings;

use lib 't/lib';
use CG;
use IO::Select;
use Test::More;
use Time::HiRes qw(sleep time);

plan skip_all => 'redis-server not installed'
    unless `command -v redis-server 2>/dev/null`;

my $t = CG->new();
my $dir = $t->dir;
my $lib = "$CG::ROOT/t/lib";

open(my $fh, '>', "$dir/child.pl") or die "child.pl: $!\n";
print $fh <<"EOF";
use strict;
use warnings;
use lib '$lib';
use CG;
use Test::More;
use Time::HiRes qw(sleep);

my \$mode = shift;
my \$t = CG->new();
\$t->redis_start();
\$t->write_conf(CG::http(redis => 1), workers => 2);
\$t->start();
my \$held;
if (\$mode ne 'kill') {
    \$t->fake_server(\$t->port(1), sub { sleep 600 });
    \$held = \$t->connect(\$t->port(1));
}

sub traffic {
    while (1) {
        \$t->get('/', { 'X-Client-Id' => 'loop' });
        sleep 0.01;
    }
}

CG::fork_child(sub {
    # a child of the traffic loop: in its process group
    my \$kid = \$mode eq 'kill' ? 1 : fork;
    traffic();
});
if (\$mode ne 'kill') {
    # forked by the test without CG: found below the test's process
    my \$pid = fork;
    if (\$pid == 0) { traffic(); }
}
ok(1, 'started');
sleep 0.3;
print "ready\\n";
# until the test has seen the processes
CG::wait_until(sub { -e "\$ENV{CG_GO}" }, 30);

if (\$mode eq 'die') {
    die "dying on purpose\\n";
} elsif (\$mode eq 'bail') {
    BAIL_OUT('bailing out on purpose');
} elsif (\$mode eq 'exception') {
    my \$none;
    \$none->method();
}
sleep 600;      # until the signal
EOF
close $fh;

# every live process below $root, as [pid, name]
sub tree {
    my ($root) = @_;
    return CG::_descendants($root);
}

sub alive {
    my ($pid) = @_;
    my $stat = CG::_slurp("/proc/$pid/stat") // return 0;
    return $stat !~ /^\d+ \(.*\) [ZX] /s;
}

my $LIMIT = 5 * CG::slow();

for my $mode (qw(die bail exception TERM INT HUP kill)) {
    my $err = "$dir/child-$mode.err";
    my $pid = open(my $out, '-|');
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        open(STDERR, '>', $err);
        $ENV{CG_GO} = "$dir/go-$mode";
        # its temp dirs (kept: it fails) go with this test's
        $ENV{TMPDIR} = $dir;
        # the signals as a terminal's test gets them: a suite started in
        # the background (nohup, "cmd &") ignores SIGINT, which the harness
        # then leaves alone, and the INT case would wait for ever
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        exec($^X, "$dir/child.pl", lc $mode) or POSIX::_exit(127);
    }

    my $sel = IO::Select->new($out);
    my ($text, $ready, @procs) = ('');
    my $deadline = time + 30 * CG::slow();
    while (!$ready && time < $deadline) {
        next unless $sel->can_read(0.5);
        sysread($out, $text, 4096, length $text) or last;
        $ready = $text =~ /^ready$/m;
    }
    # the tree at its fullest (the script waits for the go file): nginx,
    # workers, redis, fake server and its connection, the two loops and a
    # child of one
    @procs = tree($pid) if $ready;
    open(my $go, '>', "$dir/go-$mode");
    close $go;
    ok($ready, "$mode: the script started its processes")
        or diag(CG::_slurp($err));

    my $t0 = time;
    if ($mode =~ /^[A-Z]+$/) {
        kill $mode, $pid;
    } elsif ($mode eq 'kill') {
        kill 'KILL', $pid;
    }

    # prove reads a test's output until every holder of it is gone
    my $eof;
    while (time - $t0 < $LIMIT + 10) {
        next unless $sel->can_read(0.2);
        my $n = sysread($out, $text, 4096, length $text);
        if (!$n) {
            $eof = time - $t0;
            last;
        }
    }
    ok(defined $eof && $eof < $LIMIT, sprintf("$mode: its output ends in "
       . '%.2f s (under %d s)', $eof // -1, $LIMIT));
    # a script that did not end: killed with what it left, so that the
    # close (which waits for it) returns and the test fails, not hangs
    kill 'KILL', $pid, map { $_->[0] } tree($pid) unless defined $eof;
    close $out;
    my $status = $?;

    if ($mode eq 'kill') {
        is($status & 127, 9, 'kill: killed by SIGKILL');
    } else {
        isnt($status, 0, sprintf("$mode: exit status %d, signal %d",
                                 $status >> 8, $status & 127));
    }

    my %names = map { $_->[1] => 1 } @procs;
    ok($names{nginx} && $names{'redis-server'}
       && @procs >= ($mode eq 'kill' ? 5 : 8),
       "$mode: the tree had nginx, redis-server and the loops ("
       . join(', ', map { "$_->[0] $_->[1]" } @procs) . ')');

    # a process signalled at exit may take a moment to be gone
    my @left;
    CG::wait_until(sub {
        @left = grep { alive($_->[0]) } @procs;
        return !@left;
    }, 2 * CG::slow(), 0.05);
    is(join(', ', map { "$_->[0] $_->[1]" } @left), '',
       "$mode: none of them left") or diag(CG::_slurp($err));
    kill 'KILL', map { $_->[0] } @left;
}

done_testing();
