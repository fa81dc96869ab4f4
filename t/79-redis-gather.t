#!/usr/bin/perl
# Lease requests no request waits for (the charge of a new client's first
# requests, counted on the node; a lease asked for ahead of time) are
# gathered for a few ms before they leave: clients that come one after
# the other, each in a turn of the event loop of its own, share script
# calls, and each is still charged exactly what it was admitted.  A
# request that waits for its lease is not held up by the gathering.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use CG;

my $t = CG->new();
$t->redis_start();

# the default quota, far from any client here: a new name's first 8
# requests are counted on the node, then charged in one lease request
# that nothing waits for; "own" has a quota of its own (no counting ahead:
# its first request waits for its lease)
$t->write_conf(CG::http(
    zone => 'z:4m',
    quotas => ['default quota=1000000/h', 'own quota=1000000/h'],
    redis => 'timeout=1s',
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'));
$t->start();

ok($t->wait_until(sub {
       ($t->get('/', { 'X-Client-Id' => 'probe' })->{headers}{'x-redis'}
        // '') =~ /^(AHEAD|WAITED|LEASE)$/ }), 'the link is up');
sleep 0.2;

sub calls {
    my $info = join "\n", $t->redis_cli('INFO', 'commandstats');
    return $info =~ /^cmdstat_evalsha:calls=(\d+)/m ? $1 : 0;
}

# 8 requests pipelined on a connection of their own, all answered
sub eight {
    my ($name) = @_;
    my $s = $t->connect();
    $s->blocking(0);
    syswrite($s, join '', map { "GET / HTTP/1.1\r\nHost: x\r\n"
                                . "X-Client-Id: $name\r\n\r\n" } 1 .. 8);
    my ($buf, $n) = ('', 0);
    my $end = time + 10 * CG::slow();
    while (time < $end) {
        my $r = sysread($s, $buf, 65536, length $buf);
        last if defined $r && $r == 0;
        sleep 0.0002 unless $r;
        $n = () = $buf =~ m{HTTP/1\.1 200 }g;
        last if $n == 8;
    }
    close $s;
    return $n;
}

# --- 40 new clients, one after the other ----------------------------------

my $CLIENTS = 40;
$t->redis_cli('CONFIG', 'RESETSTAT');

my (@at, $short);
for my $i (1 .. $CLIENTS) {
    $short++ if eight("g$i") != 8;
    push @at, time;
}
ok(!$short, "$CLIENTS clients, 8 requests each: all admitted");

# the calls made: at most one per 2 ms of the run (a call gathers what
# comes within 5 ms of its first fetch), far fewer than clients
my $windows = 0;
my $start;
for my $at (@at) {
    next if defined $start && $at - $start < 0.002;
    $windows++;
    $start = $at;
}
ok($t->wait_until(sub {
       my @k = $t->redis_cli('--scan', '--pattern', 'cg:{g*}:w:*');
       @k == $CLIENTS }, 3 * CG::slow()), 'every client was charged');
sleep 0.1;
my $calls = calls();
diag(sprintf('%d clients in %.1f ms (%d windows of 2 ms): %d EVALSHA',
             $CLIENTS, 1000 * ($at[-1] - $at[0]), $windows, $calls));
cmp_ok($calls, '<=', $windows, 'no more script calls than 2 ms windows');
cmp_ok($calls, '<', $CLIENTS, 'fewer script calls than clients')
    if $windows < $CLIENTS;

# each charged its 8 requests and given a lease with them, in the same
# call: a long one (30 s of its traffic, at 1 r/s when its rate is not
# known yet: 30; a client without a quota of its own, far below it)
my @k = $t->redis_cli('--scan', '--pattern', 'cg:{g*}:w:*');
my @v = @k ? $t->redis_cli('MGET', @k) : ();
my @wrong = map { "$k[$_]=$v[$_]" } grep { $v[$_] != 8 + 30 } 0 .. $#k;
is(scalar(@wrong), 0, 'each client charged its 8 and a long lease of 30')
    or diag("@wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]");

# --- a request that waits for its lease ------------------------------------

# "own" waits for its first lease: it leaves at once, whatever is
# gathered; its answer comes through Redis
my $r = $t->get('/', { 'X-Client-Id' => 'own' });
is($r->{status}, 200, 'a client that waits for its lease is admitted');
is($r->{headers}{'x-redis'}, 'WAITED', 'through Redis, after waiting');

$t->stop();
done_testing();
