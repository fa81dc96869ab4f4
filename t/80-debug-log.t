#!/usr/bin/perl
# error_log at "debug" (Debian's nginx is built --with-debug): every timer
# and posted event of the module (the log batch, the lease gathering and
# the waiters' wake, the link's watchdog and reconnection, the version
# poll, the publication, the status answer's slices, the rejection
# summary) runs with nginx's debug lines, which read each event's
# connection; no worker may die of it, with Redis and without.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use CG;

sub exercise {
    my ($t, $what) = @_;
    my @pids = $t->worker_pids;
    my %codes;
    for my $i (1 .. 40) {
        my $r = $t->get('/', { 'X-Client-Id' => 'c' . ($i % 12) });
        $codes{$r->{status}}++;
    }
    $codes{$t->get('/', { 'X-Client-Id' => 'own' })->{status}}++ for 1 .. 5;
    my $s = $t->get('/status?format=json');
    is($s->{status}, 200, "$what: the status answers");
    my $p = $t->get('/status?format=prometheus');
    is($p->{status}, 200, "$what: in Prometheus text too");
    sleep 2.5 * CG::slow();         # the timers of a second and more
    $t->get('/', { 'X-Client-Id' => 'late' });
    ok(($codes{200} // 0) > 0 && ($codes{429} // 0) > 0,
       "$what: requests admitted and rejected")
        or diag(explain \%codes);
    is_deeply([ $t->worker_pids ], \@pids, "$what: the same worker");
    my @died = grep { /exited on signal|segmentation/i }
               split /\n/, $t->error_log;
    is(scalar(@died), 0, "$what: no worker died") or diag("@died");
    like($t->error_log, qr/\[debug\]/, "$what: debug lines are written");
}

# --- local -------------------------------------------------------------------

my $t = CG->new();
$t->write_conf(CG::http(quotas => ['default rate=5r/s burst=2',
                                   'own quota=3/h'],
                        status => 1),
               error_log_level => 'debug');
$t->start();
exercise($t, 'local');
$t->stop();

# --- Redis -------------------------------------------------------------------

$t = CG->new();
$t->redis_start();
$t->write_conf(CG::http(quotas => ['default rate=5r/s burst=2',
                                   'own quota=3/h'],
                        redis => 1, status => 1),
               error_log_level => 'debug');
$t->start();
ok($t->wait_for_link, 'Redis: the link is up');
exercise($t, 'Redis');

# the link lost and found again: the watchdog and the reconnection timer
$t->redis_stop();
$t->get('/', { 'X-Client-Id' => 'c1' }) for 1 .. 3;
sleep 0.5;
$t->redis_restart();
ok($t->wait_for_log(qr/is up again/, 10), 'Redis back: the link is up again');
my @died = grep { /exited on signal/ } split /\n/, $t->error_log;
is(scalar(@died), 0, 'Redis lost and back: no worker died') or diag("@died");
$t->stop();

done_testing();
