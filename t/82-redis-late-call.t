#!/usr/bin/perl

# A lease call that the node gave up on charges nothing when Redis runs it
# later: a Redis stopped (SIGSTOP) runs what its socket held as it resumes,
# long after the link's watchdog dropped the connection; before, the units
# of that call were taken from the client's quota and never spent.  Each
# call carries a deadline on Redis's clock; a node whose clock is behind
# Redis's (here by 5 s, under libfaketime) learns it from the first late
# answer and is served from then on.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(sleep);

my $MARK = 'add_header X-Redis $client_guard_redis always; empty_gif;';
my $LEASED = qr/^(?:LEASE|WAITED|AHEAD)$/;

my $r = CG->new();
my $rport = $r->redis_start();
$r->redis_cli('HSET', 'cg:quotas', 'warm', 'rate=10r/s burst=5',
              'late', 'rate=10r/s burst=5', 'ahead', 'rate=10r/s burst=5');
$r->redis_cli('SET', 'cg:version', 1);

sub conf {
    return CG::http(quotas => ['default quota=1000000/h'],
        redis => 'timeout=100ms connect_timeout=100ms', location => $MARK);
}

sub how {
    my ($t, $client) = @_;
    return $t->get('/', { 'X-Client-Id' => $client })->{headers}{'x-redis'}
        // '';
}

# --- a call left in a stopped Redis's socket ------------------------------

my $t = CG->new(redis_port => $rport);
$t->write_conf(conf());
$t->start();
ok(CG::wait_until(sub { how($t, 'warm') =~ $LEASED }, 5),
   'the link is up: a client gets its lease');
is($r->redis_cli('EXISTS', 'cg:{late}:r:1000'), 0, 'no key of "late" yet');

$r->redis_pause();
like(how($t, 'late'), qr/^DOWN_/,
     'Redis stopped: the failure policy decides within the timeout');
sleep 0.5;                  # the watchdog dropped the connection meanwhile
$r->redis_resume();
sleep 0.5;
ok(CG::wait_until(sub { how($t, 'warm') =~ $LEASED }, 5),
   'Redis resumed: leases again');
is($r->redis_cli('EXISTS', 'cg:{late}:r:1000'), 0,
   'the call Redis ran after its deadline charged nothing')
    or diag('TAT ' . $r->redis_cli('GET', 'cg:{late}:r:1000'));
ok(CG::wait_until(sub { how($t, 'late') =~ $LEASED }, 5),
   '"late" gets a lease afterwards');
is($r->redis_cli('EXISTS', 'cg:{late}:r:1000'), 1, '... charged in Redis');
$t->stop();

# --- a node whose clock is 5 s behind Redis's -------------------------------

my ($faketime) = grep { -e }
    glob('/usr/lib/*/faketime/libfaketime.so.1');
ok($faketime, 'libfaketime installed (make deps: Debian package libfaketime)')
    or BAIL_OUT('libfaketime missing');

my $b = CG->new(redis_port => $rport);
$b->write_conf(conf());
$b->start(env => { LD_PRELOAD => $faketime, FAKETIME => '-5s',
                   FAKETIME_DONT_FAKE_MONOTONIC => 1 });
my @how;
ok(CG::wait_until(sub { push @how, how($b, 'ahead'); $how[-1] =~ $LEASED },
                  5), 'the node behind gets leases')
    or diag("@how");
is($r->redis_cli('EXISTS', 'cg:{ahead}:r:1000'), 1, '... charged in Redis');
my @said = grep { /\[warn\].*Redis's clock is (\d+) ms ahead/ && $1 > 4000
                  && $1 < 6000 } split /\n/, $b->error_log // '';
is(scalar @said, 1, "it said Redis's clock is ahead, once")
    or diag($b->error_log);
note($said[0] // '');
$b->stop();

done_testing();
