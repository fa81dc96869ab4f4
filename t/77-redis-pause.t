#!/usr/bin/perl

# CLIENT PAUSE <ms> WRITE 4 times, then SIGSTOP 3 times, under traffic
# through 2 nginx nodes of 2 workers each: the lease script waits, the
# failure policy decides within the timeout, and as each pause lifts the
# leases grow back from small.
# Clients under their quota, with small bursts (what a lease that takes the
# last units of a burst makes look like a client at its limit), one of
# them sending 2 requests at once (as a request that waited and the next
# one right behind it do as a pause lifts), are never rejected, and the
# module answers no 5xx.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX qw(_exit);

my $PAUSES = 4;
my $STOPS = 3;

my $r = CG->new();
my $rport = $r->redis_start();
$r->redis_cli('HSET', 'cg:quotas', 'rate', 'rate=12r/s burst=6',
              'small', 'rate=16r/s burst=4 quota=100000/h',
              'window', 'quota=100000/h');
$r->redis_cli('SET', 'cg:version', 1);

my @nodes;
for (0 .. 1) {
    my $t = CG->new(redis_port => $rport);
    $t->write_conf(CG::http(
        quotas => ['default quota=10000000/h'],
        redis => 'timeout=100ms connect_timeout=100ms',
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'empty_gif;'),
        workers => 2);
    $t->start();
    push @nodes, $t;
}

# one process per client and node, $rate requests/s, a connection each,
# $each of them one after the other (a burst); a line per request: time
# status how
sub client {
    my ($file, $port, $rate, $client, $each) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    return $pid if $pid;
    open(my $out, '>>', $file) or _exit(1);
    $out->autoflush(1);
    my $next = time;
    my $n = 0;
    while (1) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                      Timeout => 5);
        my ($status, $how) = (599, '-');
        if ($s) {
            print $s "GET / HTTP/1.0\r\nX-Client-Id: $client\r\n\r\n";
            my $resp = do { local $/; <$s> } // '';
            $status = $1 if $resp =~ m{^HTTP/1\.\d (\d+)};
            $how = $1 if $resp =~ /^X-Redis: (\S+)/mi;
        }
        printf $out "%.4f %d %s\n", time, $status, $how;
        next if ++$n % $each;
        $next += $each / $rate;
        my $wait = $next - time;
        sleep $wait if $wait > 0;
    }
}

my $log = $r->dir . '/traffic';
my @gen;
for my $port (map { $_->port(0) } @nodes) {
    # "small" 2 at once every 500 ms: 4 of the 5 its burst admits at once
    push @gen, client("$log.$_.$port", $port, 4, $_, $_ eq 'small' ? 2 : 1)
        for qw(rate small window);
}

# the leases of a client new to a node grow too: past that first
sleep 2.5;
my $t0 = time;
for (1 .. $PAUSES) {
    $r->redis_cli('CLIENT', 'PAUSE', 1000, 'WRITE');
    sleep 2;
}

# and stalled (SIGSTOP): the lease calls in flight when the link gives up
# run as Redis resumes, their units never spent
for (1 .. $STOPS) {
    $r->redis_pause();
    sleep 1;
    $r->redis_resume();
    sleep 1;
}
kill 'KILL', @gen;
waitpid($_, 0) for @gen;

my ($n, $how) = CG::traffic_counts($log, $t0);
my %n = %$n;
my %how = %$how;

ok($how{DOWN_LOCAL}, 'the failure policy decided during the pauses')
    or diag(explain \%how);
ok($how{WAITED} || $how{LEASE}, 'leases in between') or diag(explain \%how);
for my $who (qw(rate small window)) {
    is_deeply($n{$who}, { 200 => $n{$who}{200} // 0 },
              "$who: under its quota, never rejected, no 5xx")
        or diag(explain $n{$who});
}

$_->stop() for @nodes;

done_testing();
