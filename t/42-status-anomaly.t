#!/usr/bin/perl
# Anomaly flags: a surge and an error spike against the client's own
# baseline are flagged with ratio and since; top movers; a steady client is
# not flagged.  The clients here are new: flagged with new_clients=on, and
# not by default (their baseline is still warming up: see the unit test
# t/unit/test_cg_stats.c for the same with minutes of simulated history).
# client_guard_anomaly off clears the flags.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use CG;

my $t = CG->new();

sub conf {
    my ($anomaly) = @_;
    return CG::http(zone => 'cg:1m', http => $anomaly, status => 1,
                    locations => <<'EOF');
    location /nope {
        # a 404 from the static module, after the access phase
        root %%TESTDIR%%/none;
    }
EOF
}

$t->write_conf(conf(
    'client_guard_anomaly ratio=5 min_rate=2 new_clients=on;'));
$t->start();

sub status {
    my $r = $t->get('/status?' . ($_[0] || ''));
    return decode_json($r->{content});
}

sub client {
    my ($j, $name) = @_;
    my ($c) = grep { $_->{name} eq $name } @{ $j->{clients} };
    return $c;
}

# a steady, slow client: below min_rate, never flagged
for (1 .. 4) {
    $t->get('/', { 'X-Client-Id' => 'steady' });
    sleep 0.25;
}

my $start = time();
$t->get('/', { 'X-Client-Id' => 'surger' }) for 1 .. 150;
$t->get('/nope', { 'X-Client-Id' => 'breaker' }) for 1 .. 150;
my $took = time() - $start;
diag(sprintf 'burst of 300 requests took %.2f s', $took);

my $j = status();

is_deeply($j->{anomaly},
    { enabled => JSON::PP::true, ratio => 5, min_rate_per_s => 2,
      new_clients => JSON::PP::true },
    'anomaly settings');

my $s = client($j, 'surger');
my ($surge) = grep { $_->{type} eq 'surge' } @{ $s->{anomalies} };
ok($surge, 'surge flagged') or diag(explain $s);
ok($surge && $surge->{ratio} >= 5, 'surge ratio >= 5');
ok($surge && abs($surge->{since_s} - $j->{time_ms} / 1000) < 10,
    'surge since: now');
ok($surge && $surge->{current_per_s} > $surge->{baseline_per_s},
    'current above baseline');

my $b = client($j, 'breaker');
my ($spike) = grep { $_->{type} eq 'error_spike' } @{ $b->{anomalies} };
ok($spike, 'error spike flagged') or diag(explain $b);
ok($spike && $spike->{ratio} >= 5, 'error spike ratio >= 5');
is($b->{responses_by_code_total}{404}, 150, '404s counted');

is_deeply(client($j, 'steady')->{anomalies}, [], 'steady client not flagged');

my @movers = map { $_->{name} } @{ $j->{top_movers} };
ok((grep { $_ eq 'surger' } @movers), 'surger among top movers')
    or diag(explain $j->{top_movers});
ok(!(grep { $_ eq 'steady' } @movers), 'steady not a top mover');

$j = status('sort=anomaly&limit=2');
my %top = map { $_->{name} => 1 } @{ $j->{clients} };
ok($top{surger} && $top{breaker}, 'sort=anomaly puts flagged clients first');

my $m = $t->get('/status?format=prometheus')->{content};
like($m, qr/^clientguard_anomaly_flagged\{zone="cg",client="surger",type="surge"\} 1$/m,
    'Prometheus: surge flagged');
like($m, qr/^clientguard_anomaly_flagged\{zone="cg",client="steady",type="surge"\} 0$/m,
    'Prometheus: steady not flagged');

# by default a new client's baseline warms up: no flag for a new burst
$t->write_conf(conf('client_guard_anomaly ratio=5 min_rate=2;'));
ok($t->reload(), 'reload with new_clients off (the default)');
$t->get('/', { 'X-Client-Id' => 'newbie' }) for 1 .. 150;
$j = status();
ok(!$j->{anomaly}{new_clients}, 'new_clients false');
is_deeply(client($j, 'newbie')->{anomalies}, [],
    'a new client bursting is not flagged by default');
is_deeply(client($j, 'surger')->{anomalies}, [],
    'nor the surger any more');

# switched off: no flags
$t->write_conf(conf('client_guard_anomaly off;'));
ok($t->reload(), 'reload with client_guard_anomaly off');
$j = status();
ok(!$j->{anomaly}{enabled}, 'anomaly disabled');
is_deeply(client($j, 'surger')->{anomalies}, [], 'flags cleared');
is_deeply($j->{top_movers}, [], 'no top movers');

# bad parameters
my ($rc, $out) = $t->nginx_test_conf(conf('client_guard_anomaly ratio=1;'));
isnt($rc, 0, 'ratio=1 refused');
like($out, qr/invalid parameter "ratio=1" in "client_guard_anomaly"/,
    'message names the parameter');

$t->stop();
done_testing();
