#!/usr/bin/perl
# The detector at its documented defaults (no client_guard_anomaly in the
# configuration: 10 s steps, ratio 2.5, min_rate 2), in real time, on two
# load balancers sharing one Redis: two minutes of steady traffic from 20
# teams, then one team steps to 6 times its traffic.  It is flagged by name
# within 30 s on both nodes and in the cluster view, no other team is
# flagged at any time, and the flag clears within 30 s once the team is
# back to normal.  About three minutes: it is the user's outcome at the
# defaults, which a shorter step in the other tests stands in for.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Time::HiRes qw(sleep time);
use CG;

plan skip_all => 'redis-server not installed'
    unless `command -v redis-server 2>/dev/null`;

my $redis = CG->new();
$redis->redis_start();

my $conf = CG::http(redis => 1, status => 1);
unlike($conf, qr/client_guard_anomaly/, 'no client_guard_anomaly: defaults');

my ($t1, $t2) = $redis->nodes(2, $conf);
ok($t1->wait_for_link() && $t2->wait_for_link(), 'both nodes on Redis');

my @ports = ($t1->port(0), $t2->port(0));
# a keep-alive connection to each node (one client object for both would
# reconnect at each request): a second's traffic must fit in its second on
# a loaded machine too, or the rates are not the ones meant
my @http = map { HTTP::Tiny->new(keep_alive => 1, timeout => 5) } @ports;
my $turn = 0;
my %sent;       # node index => team => requests

sub hit {
    my ($team) = @_;
    my $i = $turn++ % 2;
    $sent{$i}{$team}++;
    $http[$i]->get("http://127.0.0.1:$ports[$i]/",
               { headers => { 'X-Client-Id' => $team } });
}

sub status {
    my ($t, $q) = @_;
    my $r = $t->get('/status?limit=100' . ($q ? "&$q" : ''));
    return $r->{status} == 200 ? decode_json($r->{content}) : undef;
}

sub flagged {
    my ($j) = @_;
    return { map { $_->{name} => 1 }
             grep { @{ $_->{anomalies} || [] } } @{ $j->{clients} || [] } };
}

my @teams = map { sprintf 'team-%02d', $_ } 1 .. 20;
my (%wrongly, $polls);

# one second of traffic: the teams at 2 to 6 r/s, team-pay at its rate
sub second {
    my ($pay) = @_;
    my $t0 = time();
    for my $i (0 .. $#teams) {
        hit($teams[$i]) for 1 .. 2 + $i % 5;
    }
    hit('team-pay') for 1 .. $pay;
    my $left = 1 - (time() - $t0);
    sleep $left if $left > 0;
}

# every few seconds: who is flagged on each node and in the cluster
sub look {
    my %f;
    for my $v ([n1 => status($t1)], [n2 => status($t2)],
               [cluster => status($t1, 'scope=cluster')])
    {
        my $fl = flagged($v->[1]);
        $f{$v->[0]} = $fl->{'team-pay'} ? 1 : 0;
        $wrongly{"$v->[0]: $_"}++ for grep { $_ ne 'team-pay' } keys %$fl;
    }
    $polls++;
    return \%f;
}

# two minutes of steady history, team-pay at 20 r/s
my $steady = time();
for my $s (1 .. 125) {
    second(20);
    look() if $s % 10 == 0;
}
# what node 1 had of it, over the time it actually took (a loaded machine
# may not fit a second's requests in a second: the rate is then lower)
my $rate = ($sent{0}{'team-pay'} // 0) / (time() - $steady);

my $j = status($t1);
my ($pay) = grep { $_->{name} eq 'team-pay' } @{ $j->{clients} };
is($pay->{detector}{state}, 'watching', 'team-pay has a baseline');
ok(abs($pay->{detector}{baseline_per_s} - $rate) < 0.3 * $rate,
   sprintf('of about its half of 20 r/s on this node (%.1f r/s sent)',
           $rate))
    or diag(explain $pay->{detector});
is($j->{anomaly}{step_s}, 10, 'the default step');

# the step: 6 times its traffic.  When is it flagged where?
my $start = time();
my %at;
while (time() - $start < 40 && keys %at < 3) {
    second(120);
    my $f = look();
    for my $k (keys %$f) {
        $at{$k} //= time() - $start if $f->{$k};
    }
}

for my $k (qw(n1 n2 cluster)) {
    ok(defined $at{$k} && $at{$k} <= 30,
       "$k: team-pay's surge flagged within 30 s")
        or diag("$k: " . ($at{$k} // 'never'));
}
diag(sprintf('flagged after %s s (node 1, node 2, cluster)',
             join(', ', map { defined $at{$_} ? sprintf('%.0f', $at{$_})
                                              : 'never' }
                            qw(n1 n2 cluster))));

# it stays flagged while it lasts, with its ratio and since when
second(120) for 1 .. 3;
$j = status($t2);
($pay) = grep { $_->{name} eq 'team-pay' } @{ $j->{clients} };
my ($surge) = grep { $_->{type} eq 'surge' } @{ $pay->{anomalies} || [] };
ok($surge && $surge->{ratio} >= 2.5 && $surge->{since_s} >= int($start) - 10,
   'still flagged, with its ratio and since') or diag(explain $pay);

# back to normal: cleared within 30 s
$start = time();
my $cleared;
while (time() - $start < 40) {
    second(20);
    my $f = look();
    if (!$f->{n1} && !$f->{n2} && !$f->{cluster}) {
        $cleared = time() - $start;
        last;
    }
}
ok(defined $cleared && $cleared <= 30, 'cleared within 30 s once back')
    or diag('cleared after ' . ($cleared // 'never'));

is_deeply(\%wrongly, {}, "no other team flagged in $polls looks")
    or diag(explain \%wrongly);

$t1->stop();
$t2->stop();
done_testing();
