#!/usr/bin/perl
# Lease fetches of one turn of the event loop leave in one script call:
# many cold clients at once cost far fewer EVALSHA calls than clients, and
# each client is still charged exactly what it was admitted.  A batch whose
# call fails (one client's key of the wrong type) is no answer for all of
# its clients: they are decided by the failure policy, the error is logged
# once, and they are served through Redis again once the breaker closes.
# A batch lost to a hung Redis ends by the timeout for all of its clients;
# NOSCRIPT sends the whole batch again with EVAL, once.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Select;
use Time::HiRes qw(sleep time);
use CG;

my $t = CG->new();
$t->redis_start();

my $CLIENTS = 200;
my $T = 6_000_000;                  # us: rate=10r/m

# every grant is a single unit: a window of 10 with less than 8 leases left
# is granted an eighth of what remains (at least 1), and ahead= is 0 (1%
# of 10): every admitted request is one fetch, charged exactly once

$t->write_conf(CG::http(
    zone => 'z:4m',
    quotas => ['default quota=10/h rate=10r/m burst=5'],
    redis => 'timeout=1s',
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'),
    events => 'multi_accept on;');
$t->start();

ok($t->wait_until(sub {
       ($t->get('/', { 'X-Client-Id' => 'probe' })->{headers}{'x-redis'}
        // '') =~ /^(WAITED|LEASE)$/ }), 'the link is up');

# one request per name, all on connections of their own, connected and
# written while the worker is stopped, so that it accepts them at once
# (multi_accept) and reads them all in its next turn of the event loop;
# returns [ name, status, $client_guard_redis ] per request

sub concurrent {
    my (@names) = @_;
    my @workers = $t->worker_pids;
    kill 'STOP', @workers;
    my @socks = map { [$_, $t->connect(), ''] } @names;
    for my $s (@socks) {
        syswrite($s->[1], "GET / HTTP/1.0\r\nHost: x\r\n"
                 . "X-Client-Id: $s->[0]\r\n\r\n");
    }
    kill 'CONT', @workers;
    my %open = map { $_->[1] => $_ } @socks;
    my $sel = IO::Select->new(map { $_->[1] } @socks);
    my $end = time + 20 * CG::slow();
    while ($sel->count && time < $end) {
        for my $fh ($sel->can_read(1)) {
            my $n = sysread($fh, my $buf, 4096);
            if ($n) {
                $open{$fh}[2] .= $buf;
                next;
            }
            $sel->remove($fh);
            close $fh;
        }
    }
    return map {
        my ($status) = $_->[2] =~ m{^HTTP/1\.\d (\d+)};
        my ($how) = $_->[2] =~ /^X-Redis: *(\S+)/mi;
        [$_->[0], $status // 599, $how // '-']
    } @socks;
}

sub evalsha_calls {
    my $info = join "\n", $t->redis_cli('INFO', 'commandstats');
    my %n = (evalsha => 0, eval => 0, usec => 0);
    while ($info =~ /^cmdstat_(eval|evalsha):calls=(\d+),usec=(\d+)/mg) {
        $n{$1} = $2;
        $n{usec} += $3;
    }
    return \%n;
}

# --- 200 cold clients at once --------------------------------------------------

# every fifth client has its rate spent for the next hour: its lease
# requests are answered 0, so a reply given to the wrong client of a batch
# shows as a wrong status

my ($sec, $usec) = $t->redis_cli('TIME');
my $now = $sec * 1_000_000 + $usec;
my %spent = map { ("c$_" => 1) } grep { $_ % 5 == 0 } 1 .. $CLIENTS;
$t->redis_cli('SET', "cg:{$_}:r:60000", $now + 3600_000_000, 'PX', 60000)
    for sort keys %spent;

$t->redis_cli('CONFIG', 'RESETSTAT');

# c1 .. c200, the odd ones twice: 300 requests
my @names = map { "c$_" } 1 .. $CLIENTS;
push @names, map { "c$_" } grep { $_ % 2 } 1 .. $CLIENTS;

my $t0 = time;
my @res = concurrent(@names);
my $secs = time - $t0;

my (%admitted, %how, @bad);
for my $r (@res) {
    my ($name, $status, $how) = @$r;
    $how{$how}++;
    $admitted{$name}++ if $status == 200;
    push @bad, "$name $status $how"
        if $status != ($spent{$name} ? 429 : 200);
}
is(scalar(@bad), 0, scalar(@names) . " requests of $CLIENTS clients: "
   . 'those with a spent rate rejected, all others admitted')
    or diag("@bad[0 .. ($#bad < 9 ? $#bad : 9)]");
is(($how{WAITED} // 0) + ($how{LEASE} // 0), scalar(@names),
   'all decided through Redis') or diag(explain \%how);
diag(sprintf('%d requests in %.2f s: %s', scalar(@names), $secs,
             join(', ', map { "$_ x$how{$_}" } sort keys %how)));

my $calls = evalsha_calls();
cmp_ok($calls->{evalsha}, '<', $CLIENTS,
       "fewer EVALSHA calls than clients ($calls->{evalsha} for $CLIENTS "
       . 'clients, ' . scalar(@names) . ' requests)');
cmp_ok($calls->{evalsha}, '>', 0, 'the lease script was called');
diag("the lease script: $calls->{evalsha} calls, $calls->{usec} us in Redis");
is($calls->{eval}, 0, 'no EVAL: the script was cached');

# each client's keys hold what it was admitted: the window counters
# (whatever the window) and the GCRA's TAT, (TAT - now) / T units ahead.
# Every grant is one unit; a client that sent two requests may also hold
# one unit it did not spend (its second fetch may see it at 2 r/s or more
# and ask for the next lease ahead of time: at most one lease unspent)

my @wkeys = $t->redis_cli('--scan', '--pattern', 'cg:{c*}:w:*');
my @wvals = @wkeys ? $t->redis_cli('MGET', @wkeys) : ();
my %window;
for my $i (0 .. $#wkeys) {
    $window{$1} += $wvals[$i] if $wkeys[$i] =~ /^cg:\{(c\d+)\}:/;
}

my @clients = map { "c$_" } 1 .. $CLIENTS;
my @rkeys = map { "cg:{$_}:r:60000" } @clients;
my @tats = $t->redis_cli('MGET', @rkeys);
($sec, $usec) = $t->redis_cli('TIME');
my $later = $sec * 1_000_000 + $usec;

my (@wrong_w, @wrong_r, $unspent);
$unspent = 0;
for my $i (0 .. $#clients) {
    my $c = $clients[$i];
    my $got = $admitted{$c} // 0;
    my $w = $window{$c} // 0;
    my $max = $got + ($got > 1 ? 1 : 0);
    if ($spent{$c}) {
        # untouched: nothing charged, the TAT as it was set
        push @wrong_w, "$c: rate spent, window $w" if $w != 0;
        push @wrong_r, "$c: rate spent, TAT moved"
            if ($tats[$i] // 0) != $now + 3600_000_000;
        next;
    }
    push @wrong_w, "$c: admitted $got, window $w" if $w < $got || $w > $max;
    $unspent += $w - $got if $w > $got;
    my $rate = ($tats[$i] // '') eq '' ? 0
        : int(($tats[$i] - $later) / $T + 0.5);
    push @wrong_r, "$c: admitted $got, rate $rate, window $w"
        if $rate != $w;
}
is(scalar(@wrong_w), 0, 'every window counter holds what its client was '
   . "admitted ($unspent unspent units)")
    or diag(join '; ', @wrong_w[0 .. ($#wrong_w < 9 ? $#wrong_w : 9)]);
is(scalar(@wrong_r), 0, 'every rate was charged as much as its window')
    or diag(join '; ', @wrong_r[0 .. ($#wrong_r < 9 ? $#wrong_r : 9)]);

# --- the script is gone (SCRIPT FLUSH): the batch is sent again with EVAL ----

$t->redis_cli('SCRIPT', 'FLUSH');
$t->redis_cli('CONFIG', 'RESETSTAT');

@res = concurrent(map { "s$_" } 1 .. 50);
@bad = grep { $_->[1] != 200 || $_->[2] !~ /^(WAITED|LEASE)$/ } @res;
is(scalar(@bad), 0, 'NOSCRIPT: all 50 clients served through Redis')
    or diag(join '; ', map { "@$_" } @bad);
$calls = evalsha_calls();
is($calls->{eval}, 1, 'NOSCRIPT: one EVAL for the whole batch of 50 '
   . "($calls->{evalsha} EVALSHA)");

# --- a key of the wrong type fails that client only -------------------------

$t->redis_cli('HSET', 'cg:{bad}:r:60000', 'f', 'v');

# in the middle: read in the same turn as others, in one batch with them
my @d = map { "d$_" } 1 .. 40;
@res = concurrent(@d[0 .. 19], 'bad', @d[20 .. 39]);

@bad = grep { $_->[1] != 200 } @res;
is(scalar(@bad), 0, 'a batch with a broken key: every request still '
   . 'answered 200 (by the failure policy or Redis)')
    or diag(join '; ', map { "@$_" } @bad);
my %bh = map { $_->[0] => $_->[2] } @res;
is($bh{bad}, 'DOWN_LOCAL', 'the broken client is decided by the policy');

my @others = grep { $_->[0] ne 'bad' && $_->[2] !~ /^(WAITED|LEASE|AHEAD)$/ }
    @res;
is(scalar(@others), 0, 'the other clients of its call are served through '
   . 'Redis') or diag(join '; ', map { "@$_" } @others);

ok($t->wait_for_log(qr/lease script failed for "bad"/),
   'the error is logged, naming the client');
my @lines = grep { /lease script failed/ } split /\n/, $t->error_log;
like($lines[0] // '', qr/WRONGTYPE.*"cg:\{bad\}:\*"/,
     'with the error and its keys');
is(scalar(grep { /unexpected lease reply/ } split /\n/, $t->error_log), 0,
   'no batch failed as a whole');

# the client stays with the policy (no fetch loop), the others with Redis

my $calls0 = evalsha_calls()->{evalsha};
my @again;
for (1 .. 5) {
    push @again, concurrent('bad', @d[0 .. 9]);
    select(undef, undef, undef, 0.05);
}
my $calls1 = evalsha_calls()->{evalsha};
my @notredis = grep { $_->[0] ne 'bad'
                      && ($_->[1] != 200
                          || $_->[2] !~ /^(WAITED|LEASE|AHEAD)$/) } @again;
is(scalar(@notredis), 0, 'the others stay with Redis')
    or diag(join '; ', map { "@$_" } @notredis);
my @badpol = grep { $_->[0] eq 'bad' && $_->[2] ne 'DOWN_LOCAL' } @again;
is(scalar(@badpol), 0, 'the broken client stays with the policy for a second');
cmp_ok($calls1 - $calls0, '<=', 10, 'without a call per request for it '
       . '(' . ($calls1 - $calls0) . ' EVALSHA for 55 requests)');

# mended: served through Redis again

$t->redis_cli('DEL', 'cg:{bad}:r:60000');
ok($t->wait_until(sub {
       my @r = concurrent('bad');
       $r[0][1] == 200 && $r[0][2] =~ /^(WAITED|LEASE|AHEAD)$/;
   }, 5 * CG::slow()), 'the key mended: the client is served through Redis');

# --- Redis hangs: a whole batch ends by the timeout ---------------------------

$t->redis_pause();
$t0 = time;
@res = concurrent(map { "h$_" } 1 .. 50);
$secs = time - $t0;
$t->redis_resume();

@bad = grep { $_->[1] != 200 || $_->[2] ne 'DOWN_LOCAL' } @res;
is(scalar(@bad), 0, 'a batch lost to a hung Redis: all 50 decided by the '
   . 'policy') or diag(join '; ', map { "@$_" } @bad);
cmp_ok($secs, '<', 1 + 1.5 * CG::slow(), sprintf('within the timeout '
       . '(%.2f s)', $secs));

ok($t->wait_until(sub {
       my @r = concurrent(map { "h$_" } 1 .. 50);
       !grep { $_->[1] != 200 || $_->[2] !~ /^(WAITED|LEASE|AHEAD)$/ } @r;
   }, 10 * CG::slow()), 'Redis is back: the same clients through Redis');

$t->stop();
done_testing();
