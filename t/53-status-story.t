#!/usr/bin/perl
# The incident the module exists for, replayed at test speed (step=1s: a
# step of the history is a second; everything else is the defaults): two
# load balancers on one Redis, 20 teams of steady traffic spread over both,
# then one team records a deploy and jumps to 6 times its traffic, then
# half its requests fail with 422 from the backend.  The surge and the 422
# spike are flagged by name on both nodes and in the cluster view; no other
# team is flagged; the deploy marker and an incident show in both views.
# And quota use under Redis: both nodes show the cluster's count.

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

my $conf = CG::http(
    redis => 1,
    http => <<'EOF',
    client_guard_anomaly step=1s;
    client_guard_status_publish interval=500ms;
EOF
    status => 'deploy_token=story-token-1',
    locations => <<'EOF');
    location /bad {
        # the backend's validation errors: a 422 after the access phase
        error_page 404 =422 /e422.gif;
        root %%TESTDIR%%/none;
    }

    location = /e422.gif {
        empty_gif;
    }
EOF

# a quota in Redis for the quota part, before the nodes start
$redis->redis_cli('HSET', 'cg:quotas', 'team-quota', 'quota=1000/h');

my ($t1, $t2) = $redis->nodes(2, $conf);
ok($t1->wait_for_link() && $t2->wait_for_link(), 'both nodes on Redis');

my @ports = ($t1->port(0), $t2->port(0));
# a keep-alive connection to each node (one client object for both would
# reconnect at each request): a second's traffic must fit in its second on
# a loaded machine too, or the rates are not the ones meant
my @http = map { HTTP::Tiny->new(keep_alive => 1, timeout => 5) } @ports;
my $turn = 0;

# one request, to the nodes in turn as a load balancer pair would
sub hit {
    my ($team, $path) = @_;
    my $i = $turn++ % 2;
    return $http[$i]->get("http://127.0.0.1:$ports[$i]$path",
                      { headers => { 'X-Client-Id' => $team } })->{status};
}

my @teams = map { sprintf 'team-%02d', $_ } 1 .. 20;

# "secs" seconds of traffic: every team at 2 to 6 requests a second,
# team-pay at its own rate and share of 422s
sub traffic {
    my ($secs, $pay_rate, $pay_bad) = @_;
    my $start = time();
    my $end = $start + $secs;
    my $pay = 0;
    while (time() < $end) {
        my $t0 = time();
        for my $i (0 .. $#teams) {
            hit($teams[$i], '/') for 1 .. 2 + $i % 5;
        }
        for my $n (1 .. $pay_rate) {
            hit('team-pay', $n <= $pay_rate * $pay_bad ? '/bad' : '/');
            $pay++;
        }
        my $left = 1 - (time() - $t0);
        sleep $left if $left > 0;
    }
    return $pay / (time() - $start);      # team-pay's rate, as sent
}

sub status {
    my ($t, $q) = @_;
    my $r = $t->get('/status?limit=100' . ($q ? "&$q" : ''));
    return $r->{status} == 200 ? decode_json($r->{content}) : undef;
}

sub flagged {
    my ($j) = @_;
    my %f;
    for my $c (@{ $j->{clients} || [] }) {
        $f{$c->{name}} = join ',', sort map { $_->{type} }
                                        @{ $c->{anomalies} || [] };
        delete $f{$c->{name}} if $f{$c->{name}} eq '';
    }
    return \%f;
}

# steady history: 14 steps, team-pay at 10 requests a second
traffic(14, 10, 0);

my $j = status($t1);
is($j->{node}, 'node-' . $t1->port(0), 'a node names itself as configured');
is(scalar(keys %{ flagged($j) }), 0, 'steady: nothing flagged on node 1')
    or diag(explain flagged($j));
is(scalar(keys %{ flagged(status($t2)) }), 0, 'nor on node 2');

# the deploy, then the surge: 6 times its traffic
is($t1->request('POST', '/status?deploy=team-pay&note=v2.7',
                { Authorization => 'Bearer story-token-1' })->{status},
   201, 'the deploy recorded on node 1');
my $r = $t2->request('POST', '/status?incident=new&title=Payments+surge'
                            . '&eta=15m',
                     { Authorization => 'Bearer story-token-1' });
is($r->{status}, 201, 'an incident opened on node 2');

# 8 s: the cluster's ratio is of 10 s rates; with a shorter surge, a
# loaded machine that sends less than 60 a second (a second's traffic
# taking longer than its second) brings it near the threshold (seen:
# under 2.5 in a clean-clone run under ASan)
my $sent = traffic(8, 60, 0);
note(sprintf('the surge: team-pay at %.1f r/s', $sent));

for my $t ($t1, $t2) {
    my $n = $t == $t1 ? 'node 1' : 'node 2';
    my $f = flagged(status($t));
    is($f->{'team-pay'} // '', 'surge', "$n: team-pay's surge flagged");
    is_deeply([grep { $_ ne 'team-pay' } sort keys %$f], [],
              "$n: no other team flagged") or diag(explain $f);
}

my $c;
ok(CG::wait_until(sub {
    $c = status($t1, 'scope=cluster');
    return $c && (flagged($c)->{'team-pay'} // '') =~ /surge/;
}, 5), 'the cluster view flags the surge') or diag(explain flagged($c));
is_deeply([grep { $_ ne 'team-pay' } sort keys %{ flagged($c) }], [],
          'and no other team');
my ($cp) = grep { $_->{name} eq 'team-pay' } @{ $c->{clients} };
is($cp->{nodes}, 2, 'team-pay counted on both nodes');
ok($cp->{detector}{ratio} >= 2.5, 'its cluster ratio')
    or diag(explain $cp);
is(($c->{top_movers}[0] || {})->{name} // '', 'team-pay',
   'team-pay leads the cluster top movers');

# then half its requests get 422
traffic(6, 60, 0.5);

for my $t ($t1, $t2) {
    my $n = $t == $t1 ? 'node 1' : 'node 2';
    my $f = flagged(status($t));
    like($f->{'team-pay'} // '', qr/errors_4xx/,
         "$n: team-pay's 422 spike flagged");
    is_deeply([grep { $_ ne 'team-pay' } sort keys %$f], [],
              "$n: no other team flagged") or diag(explain $f);
}

ok(CG::wait_until(sub {
    $c = status($t2, 'scope=cluster');
    return $c && (flagged($c)->{'team-pay'} // '') =~ /errors_4xx/;
}, 5), 'the cluster view flags the 422 spike') or diag(explain flagged($c));

# the deploy marker and the incident, in both views of both nodes
for my $t ($t1, $t2) {
    my $n = $t == $t1 ? 'node 1' : 'node 2';
    ok(CG::wait_until(sub {
        my $v = status($t);
        my $cv = status($t, 'scope=cluster');
        return (grep { $_->{team} eq 'team-pay' } @{ $v->{deploys} })
            && (grep { $_->{team} eq 'team-pay' } @{ $cv->{deploys} })
            && (grep { $_->{title} eq 'Payments surge' } @{ $v->{incidents} })
            && (grep { $_->{title} eq 'Payments surge' }
                     @{ $cv->{incidents} });
    }, 10), "$n: the deploy and the incident, node and cluster views");
}

# the history, in the cluster view too: the surge shows in its steps
$c = status($t1, 'scope=cluster&client=team-pay&history=1');
my $h = $c->{clients}[0]{history};
ok($h && @{ $h->{offered} } >= 20, 'the cluster history of team-pay')
    or diag(explain $c->{clients}[0]);
if ($h) {
    # the steady steps first, the surge's last (a step of the test's
    # traffic can fall partly into the next one: the median, the highest)
    my @o = @{ $h->{offered} };
    my @steady = sort { $a <=> $b } @o[1 .. 10];
    my ($top) = sort { $b <=> $a } @o[-12 .. -2];
    ok($top > 3 * $steady[5], 'summed over the nodes: the surge in it')
        or diag("@o");
}

# quota use under Redis: both nodes show the cluster's count.  A team at
# 10 requests a second over both nodes for 8 s: what Redis counts is what
# was admitted, plus what the nodes hold unspent (a second of traffic each
# at this rate, docs/redis.md); a node knows the cluster as of Redis's last
# answer to it, so it may miss what the other spent of a lease granted
# since (a second of its traffic, 5 here, up to 10 for a first lease).
# The 8 s and the reads after them in one hour's window: this part comes
# some 30 s after new(), near the end of the margin new() waited for
CG::window_clear(3600, 15);
$sent = 0;
for (1 .. 8) {
    my $t0 = time();
    for (1 .. 10) {
        $sent++ if hit('team-quota', '/') == 200;
    }
    my $left = 1 - (time() - $t0);
    sleep $left if $left > 0;
}
is($sent, 80, '80 requests of team-quota admitted');

# (a request admitted ahead of a lease is Redis's once its charge, sent at
# once, is answered: read after the last ones landed)
for my $t ($t1, $t2) {
    my $n = $t == $t1 ? 'node 1' : 'node 2';
    my $l;
    CG::wait_until(sub {
        my $v = status($t, 'client=team-quota');
        $l = $v->{clients}[0]{quota}{limits}[0] || {};
        return ($l->{used} // -1) >= 80;
    }, 2);
    my $used = $l->{used} // -1;
    note("$n: used $used");
    ok($used >= 80 - 10 && $used <= 80 + 2 * 10,
       "$n: quota used is the cluster's count (80 admitted; the other "
       . "node's last lease 10, the nodes' holdings 20)")
        or diag("used: $used");
    is($l->{used} + $l->{remaining}, 1000, "$n: used + remaining = limit");
}

$t1->stop();
$t2->stop();
done_testing();
