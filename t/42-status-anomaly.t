#!/usr/bin/perl
# Anomaly flags at test speed (step=1s: the baseline is a few seconds of
# history instead of minutes; the detector is the same): a surge of the
# offered rate and spikes of 4xx and 5xx shares, each against the client's
# own baseline, flagged with ratio and since; a steady client stays
# unflagged; a new client is reported young, not flagged; top movers;
# sort=anomaly; Prometheus; the flags clear when the traffic is back, and
# with client_guard_anomaly off.  The detector's maths at the default step
# (10 s, 15 minutes of history) is in t/unit/test_cg_history.c.

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
    return CG::http(
        zone => 'cg:1m',
        http => $anomaly,
        status => 1,
        locations => <<'EOF');
    location /nope {
        # a 404 from the static module, after the access phase
        root %%TESTDIR%%/none;
    }

    location /boom {
        # a 500 after the access phase
        error_page 404 =500 /500.gif;
        root %%TESTDIR%%/none;
    }

    location = /500.gif {
        empty_gif;
    }
EOF
}

$t->write_conf(conf('client_guard_anomaly step=1s;'));
$t->start();

sub status {
    my $r = $t->get('/status?' . ($_[0] || ''));
    return decode_json($r->{content});
}

sub client {
    my ($j, $name) = @_;
    my ($c) = grep { $_->{name} eq $name } @{ $j->{clients} };
    return $c || {};
}

sub types {
    my ($c) = @_;
    return join ',', sort map { $_->{type} } @{ $c->{anomalies} || [] };
}

# "secs" seconds at about "rate" requests per second for each client
# given as [name, path]
sub traffic {
    my ($secs, $rate, @who) = @_;
    my $end = time() + $secs;
    while (time() < $end) {
        my $t0 = time();
        for my $w (@who) {
            $t->get($w->[1], { 'X-Client-Id' => $w->[0] }) for 1 .. $w->[2];
        }
        my $left = 1 / $rate - (time() - $t0);
        sleep $left if $left > 0;
    }
}

# 14 steps of steady history: 10 requests a second for each
my @steady = (['steady', '/', 10], ['surger', '/', 10],
              ['thrower', '/', 10], ['breaker', '/', 10]);
traffic(14, 1, @steady);

my $j = status();
is($j->{anomaly}{step_s}, 1, 'the step is 1 s here');
is($j->{anomaly}{ratio}, 2.5, 'the default ratio');
for my $n (qw(steady surger thrower breaker)) {
    is(client($j, $n)->{detector}{state}, 'watching', "$n: has a baseline");
}

# a new client bursting is young: reported, not flagged
$t->get('/', { 'X-Client-Id' => 'newbie' }) for 1 .. 60;

# the surge (6x), a 4xx spike, a 5xx spike, while "steady" goes on
my $t0 = time();
traffic(4, 1, ['steady', '/', 10], ['surger', '/', 60],
        ['breaker', '/nope', 10], ['thrower', '/boom', 10]);

$j = status('sort=anomaly&limit=10');

my $s = client($j, 'surger');
my ($surge) = grep { $_->{type} eq 'surge' } @{ $s->{anomalies} || [] };
ok($surge, 'surge flagged') or diag(explain $s);
ok($surge && $surge->{ratio} >= 2.5, 'its ratio');
ok($surge && $surge->{since_s} >= int($t0) - 1
   && $surge->{since_s} <= time() + 1, 'since: the surge');
ok($surge && $surge->{baseline_per_s} > 5 && $surge->{baseline_per_s} < 15,
   'against its own baseline, ~10 r/s');
is(types($s), 'surge', 'only a surge');

my $b = client($j, 'breaker');
is(types($b), 'errors_4xx', 'the 404 storm: a 4xx spike, nothing else')
    or diag(explain $b);
my ($e4) = grep { $_->{type} eq 'errors_4xx' } @{ $b->{anomalies} || [] };
ok($e4 && $e4->{share} > 0.5 && $e4->{baseline_share} < 0.05,
   'the share against its baseline share');
is(client($j, 'thrower')->{anomalies}[0]{type} // '', 'errors_5xx',
   'the 500s: a 5xx spike');

is(types(client($j, 'steady')), '', 'steady client not flagged');
is(client($j, 'steady')->{detector}{state}, 'watching', 'steady: watching');
is(client($j, 'newbie')->{detector}{state}, 'young', 'new client: young');
is(types(client($j, 'newbie')), '', 'and not flagged');

my %top = map { $_->{name} => 1 } @{ $j->{clients} }[0 .. 2];
ok($top{surger} && $top{breaker} && $top{thrower},
   'sort=anomaly puts the flagged clients first')
    or diag(join ' ', map { $_->{name} } @{ $j->{clients} });

my @movers = map { $_->{name} } @{ $j->{top_movers} };
is($movers[0] // '', 'surger', 'the surger leads the top movers')
    or diag(explain $j->{top_movers});
ok(!(grep { $_ eq 'steady' } @movers), 'steady is no mover');

my $m = $t->get('/status?format=prometheus')->{content};
like($m, qr/^clientguard_anomaly_flagged\{zone="cg",client="surger",type="surge"\} 1$/m,
    'Prometheus: surge flagged');
like($m, qr/^clientguard_anomaly_flagged\{zone="cg",client="breaker",type="errors_4xx"\} 1$/m,
    'Prometheus: 4xx spike flagged');
like($m, qr/^clientguard_anomaly_flagged\{zone="cg",client="steady",type="surge"\} 0$/m,
    'Prometheus: steady not flagged');

# the history in JSON: the surge shows in the last steps
my $h = client(status('client=surger&history=1'), 'surger')->{history};
ok($h && $h->{step_s} == 1 && @{ $h->{offered} } == $h->{steps},
   'the history of a client') or diag(explain $h);
# (the highest of them: a step of the test's traffic can fall partly
# into the next one while it reads the status)
my $top = 0;
for my $n ($h ? @{ $h->{offered} }[-6 .. -2] : ()) {
    $top = $n if $n > $top;
}
ok($h && $top > 3 * $h->{offered}[5],
   'its last steps are the surge') or diag(explain $h);
ok($h && $h->{flagged}[-1], 'recorded as flagged');

# back to normal: cleared within a few steps
traffic(6, 1, @steady);
$j = status();
is(types(client($j, $_)), '', "$_ cleared") for qw(surger breaker thrower);

# switched off: no flags, the state says so
$t->write_conf(conf('client_guard_anomaly off;'));
ok($t->reload(), 'reload with client_guard_anomaly off');
traffic(3, 1, ['surger', '/', 60]);
$j = status();
ok(!$j->{anomaly}{enabled}, 'anomaly disabled');
is(types(client($j, 'surger')), '', 'nothing flagged');
is(client($j, 'surger')->{detector}{state}, 'off', 'the detector is off');
is_deeply($j->{top_movers}, [], 'no top movers');

# that reload also changed the step (1 s to the default 10 s): the
# histories start again rather than being read at the wrong step
ok($t->wait_for_log(qr/"cg": the history step is now 10000 ms, the /
                    . qr/histories of \d+ clients start again/),
   'a new step: the histories start again');

# and back to 1 s: an empty past read at the new step would flag every
# client against a baseline of nothing; they are young again instead
$t->write_conf(conf('client_guard_anomaly step=1s;'));
ok($t->reload(), 'reload back to step=1s');
ok($t->wait_for_log(qr/the history step is now 1000 ms/),
   'the histories start again');
traffic(4, 1, @steady);
$j = status();
is(join(',', map { $_->{name} } grep { @{ $_->{anomalies} } }
                 @{ $j->{clients} }), '', 'nothing flagged after it');
is(client($j, 'steady')->{detector}{state}, 'young', 'young again');

# bad parameters
for my $bad ('ratio=1', 'errors=15', 'errors=0%', 'step=100ms', 'min_rate=0',
             'new_clients=on')
{
    my ($rc, $out) = $t->nginx_test_conf(conf("client_guard_anomaly $bad;"));
    isnt($rc, 0, "$bad refused");
    like($out, qr/invalid parameter "\Q$bad\E" in "client_guard_anomaly"/,
         "message names $bad");
}

$t->stop();
done_testing();
