#!/usr/bin/perl

# Clients under their rate whose requests come a few at once (a batch, a
# retry, a request that waited and the next one right behind it), through
# 2 nginx nodes of 2 workers each sharing one Redis, at the default lease
# settings: never rejected.  Each node gets each client's burst a few ms
# after the other node got it, as when one caller fans out over the load
# balancers; together they stay within the GCRA's burst (which admits
# burst + 1 at once) and at half the rate or less.
#
# Before this, a node's leases taken ahead of time held units of the small
# burst unspent (a lease lives 2 x lease, less than the time to the next
# burst) and the other node found too little; two requests 25 ms apart
# read as 40 r/s, and a client at 4 r/s per node was paced as one at its
# rate.  The arithmetic is in t/unit/test_cg_lease.c (run_bursts).

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(time sleep);

my $SECS = 8;

# name => [ quota, requests at once per node, every s ]
my %CLIENTS = (
    'pair' => [ 'rate=16r/s burst=4', 2, 0.5 ],     # 4 of 5 at once, 8 r/s
    'pairs' => [ 'rate=16r/s burst=4', 2, 0.32 ],   # the same, 12.5 r/s
    'six' => [ 'rate=12r/s burst=6', 2, 0.5 ],      # 4 of 7, 8 r/s
    'batch' => [ 'rate=30r/s burst=9', 3, 1 ],      # 6 of 10, 6 r/s
);

my $r = CG->new();
$r->redis_start();
$r->redis_cli('HSET', 'cg:quotas', map { $_ => $CLIENTS{$_}[0] }
              sort keys %CLIENTS);
$r->redis_cli('SET', 'cg:version', 1);

my @nodes = $r->nodes(2, CG::http(
    quotas => ['default quota=10000000/h'],
    redis => 1,                     # every setting at its default
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'),
    workers => 2);

# a client's bursts to one node: $each requests one after the other (a
# connection each), every $every s from $start, never closer (a burst
# that came late is not caught up: the client stays under its rate at
# every moment, and a start on a loaded machine does not send two bursts
# back to back); a line per request: time status how
sub bursts {
    my ($file, $t, $client, $each, $every, $start) = @_;
    return CG::fork_child(sub {
        open(my $out, '>>', $file) or die "$file: $!\n";
        $out->autoflush(1);
        # HTTP::Tiny loads on its first request: not in the first burst
        $t->get('/', { 'X-Client-Id' => 'warm-up' });
        for (my $at = $start; ; $at += $every) {
            my $wait = $at - time;
            sleep $wait if $wait > 0;
            $at = time if $wait < 0;
            for (1 .. $each) {
                my $res = $t->get('/', { 'X-Client-Id' => $client });
                printf $out "%.4f %d %s\n", time, $res->{status},
                    $res->{headers}{'x-redis'} // '-';
            }
        }
    });
}

# the second node's bursts 10 ms after the first's: the first node's
# leases are still held when the second asks
my $log = $r->dir . '/traffic';
my $start = time + 0.5;
my @gen;
for my $i (0 .. 1) {
    for my $c (sort keys %CLIENTS) {
        push @gen, bursts("$log.$c.$i", $nodes[$i], $c, $CLIENTS{$c}[1],
                          $CLIENTS{$c}[2], $start + 0.01 * $i);
    }
}

sleep 0.5 + $SECS;
CG::stop_child($_, 'KILL') for @gen;

my ($n, $how) = CG::traffic_counts($log);
my %n = %$n;
my %how = %$how;

ok(($how{LEASE} // 0) + ($how{WAITED} // 0) > 0, 'decided by leases')
    or diag(explain \%how);
for my $c (sort keys %CLIENTS) {
    my $want = 2 * $CLIENTS{$c}[1] * int($SECS / $CLIENTS{$c}[2]);
    my $sent = 0;
    $sent += $_ for values %{$n{$c} || {}};
    cmp_ok($sent, '>=', $want, "$c: its bursts all sent");
    is_deeply($n{$c}, { 200 => $n{$c}{200} // 0 },
              "$c ($CLIENTS{$c}[0], $CLIENTS{$c}[1] at once per node): "
              . 'under its rate, never rejected')
        or diag(explain $n{$c});
}

$_->stop() for @nodes;

done_testing();
