#!/usr/bin/perl

# Three nginx instances on one Redis share a client's quota: the cluster
# admits the quota (leases are granted only from what Redis still has; a
# node may admit one unit ahead of a lease, see below), requests are decided from leases (few Redis commands), and rejected
# traffic costs Redis nothing once the window is spent.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use HTTP::Tiny;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);

my $redis = CG->new();
my $rport = $redis->redis_start();

my $QUOTA = 150;
$redis->redis_cli('HSET', 'cg:quotas', 'shared', "quota=$QUOTA/h",
                  'fast', 'quota=100000/h', 'rated', 'rate=100r/s burst=10');

# a generous timeout: exact counts, even on a loaded test machine
my @nodes = $redis->nodes(3, CG::http(
    quotas => ['default quota=10/h'],
    redis => 'timeout=2s',
    location => 'add_header X-Redis $client_guard_redis always; '
        . 'empty_gif;'), workers => 2, access_log => 1);

for my $t (@nodes) {
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'probe' })->{headers}{'x-redis'} // '')
            eq 'LEASE' }, 5), 'node uses Redis');
}

# fan_out(sub { my ($t) = @_; ...; return { status => count } }): runs the
# sub in 2 processes per node at once, returns the summed counts

sub fan_out { return CG::fan_out(\@nodes, $_[0]) }

# each node: 2 connections x N requests, all at once

sub blast {
    my ($client, $per_conn) = @_;
    return fan_out(sub {
        $_[0]->statuses($per_conn, '/', { 'X-Client-Id' => $client });
    });
}

# exactly the quota, but for what admitting ahead of a lease may add
# (docs/redis.md, bounds): at most "ahead" units per node, here 1 (1% of
# 150), when a node's last word from Redis said plenty was left and the
# other nodes took it all before its charge arrived.  Seen once (152) in
# a clean-clone run of the whole suite in parallel, never alone.

my $total = blast('shared', 75);
my $ok = ($total->{200} // 0) >= $QUOTA && ($total->{200} // 0) <= $QUOTA + 3;
ok($ok, "3 nodes at 3x the quota: $QUOTA admitted (+ at most 1 ahead per "
   . 'node): ' . ($total->{200} // 0)) or diag(explain $total);
diag("admitted $total->{200} of $QUOTA: units admitted ahead")
    if $ok && $total->{200} != $QUOTA;
is(($total->{200} // 0) + ($total->{429} // 0), 3 * 2 * 75,
   'the rest rejected');

sub lease_calls {
    my $info = join "\n", $redis->redis_cli('INFO', 'commandstats');
    my $n = 0;
    $n += $1 while $info =~ /^cmdstat_eval(?:sha)?:calls=(\d+)/mg;
    return $n;
}

my $before = lease_calls();
$total = blast('shared', 30);
is($total->{429}, 3 * 2 * 30, 'spent window: everything rejected');
my $after = lease_calls();
ok($after - $before <= 6, 'spent window: rejected traffic costs Redis '
   . 'nothing (' . ($after - $before) . ' lease calls for 180 requests)');

$before = lease_calls();
$total = blast('fast', 200);
$after = lease_calls();
is($total->{200}, 1200, 'large quota: all admitted');
my $ratio = ($after - $before) / 1200;
ok($ratio < 0.5, sprintf('leases: %.3f Redis lease calls per request', $ratio));
diag(sprintf('lease calls per request at test rates: %.3f', $ratio));

# a rate across the nodes: flat out for 3 s from 6 connections; the bound
# (docs/redis.md) is r*L + (b + 1) + min(r * 2 * lease, n * (b + 1))

# the 6 processes start together, once all of them are up (they may take
# a good part of a second to start on a loaded machine: counted from
# before the fork, the rate would have less time than L)

my $L = 3;
my $BIN = 0.1;
my $start = time + 1 * CG::slow();
my $end = $start + $L;
my $rated = fan_out(sub {
    my ($t) = @_;
    my $http = HTTP::Tiny->new(keep_alive => 1);
    my $url = 'http://127.0.0.1:' . $t->port(0) . '/';
    my %c;
    Time::HiRes::sleep($start - time) if $start > time;
    while ((my $at = time) < $end) {
        my $s = $http->get($url, { headers => { 'X-Client-Id' => 'rated' } })
            ->{status};
        $c{$s}++;
        # offered, per tenth of a second of the run
        $c{'o' . int(($at - $start) / $BIN)}++ if $at >= $start;
    }
    return \%c;
});
my %rated = %$rated;
my $max = 100 * $L + 11 + 20 + 5;    # + 5: requests in flight at the end

# the floor: 80% of the rate over the time the clients actually offered
# it.  On a loaded machine the clients stall now and then: a tenth of a
# second in which they offered fewer requests than the rate allows admits
# only those (a stall costs the rate of its length; the burst of 10 makes
# up for part of it).  On a quiet machine every tenth is full: 240 of 300.
my $offered = 0;
for my $bin (0 .. $L / $BIN - 1) {
    my $n = $rated{"o$bin"} // 0;
    $offered += $n < 100 * $BIN ? $n : 100 * $BIN;
}
my $min = int(0.8 * $offered);
note(join " ", map { $rated{"o$_"} // 0 } 0 .. $L / $BIN - 1);
note(sprintf('rated: %d admitted, %d rejected; the rate offered in %.0f%% '
     . 'of the run', $rated{200} // 0, $rated{429} // 0,
     100 * $offered / (100 * $L)));
ok(($rated{200} // 0) <= $max && ($rated{200} // 0) >= $min,
   "rate=100r/s burst=10 over 3 nodes for $L s: $rated{200} admitted "
   . "(bounds $min, 80% of what was offered up to the rate, and $max)")
    or diag(explain { map { $_ => $rated{$_} } grep { /^\d+$/ } keys %rated });
diag("the clients offered the rate in less than half the run: the floor "
     . "is $min") if $offered < 0.5 * 100 * $L;

$_->stop() for @nodes;
done_testing();
