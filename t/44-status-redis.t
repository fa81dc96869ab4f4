#!/usr/bin/perl
# Status endpoint with the Redis link: health.redis shows the link state,
# failure policy, live nodes and bad quota definitions; a client whose
# quota comes from Redis says source "redis"; the Prometheus answer carries
# clientguard_redis_* and still passes promtool.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my $redis = `command -v redis-server 2>/dev/null`;
plan skip_all => 'redis-server not installed' unless $redis;

my $t = CG->new();
$t->redis_start();
$t->redis_cli('HSET', 'cg:quotas', 'team-r', 'quota=50/h',
              'team-bad', 'rate=lots');

$t->write_conf(CG::http(quotas => ['team-c quota=40/h'], redis => 1,
                        http => 'client_guard_redis_failure open;',
                        status => 1));

$t->start();

my $j;
my $ok = CG::wait_until(sub {
    $j = decode_json($t->get('/status')->{content});
    return $j->{health}{redis}{link_state} eq 'ready'
        && @{ $j->{health}{redis}{quota_errors} };
}, 10);
ok($ok, 'link ready, quotas read') or diag(explain $j->{health});

$t->get('/', { 'X-Client-Id' => $_ }) for qw(team-r team-r team-c);

$j = decode_json($t->get('/status?sort=name')->{content});
my $r = $j->{health}{redis};
is($r->{configured}, JSON::PP::true, 'redis configured');
is($r->{link_state}, 'ready', 'link_state ready');
is($r->{link_outages}, 0, 'no outage yet');
ok($r->{quota_sync_age_s} >= 0 && $r->{quota_sync_age_s} <= 6,
   'quota definitions read within the last full refresh')
    or diag($r->{quota_sync_age_s});
is($r->{failure_policy}, 'open', 'failure_policy');
is($r->{policy_in_force}, JSON::PP::false, 'policy not in force');
ok($r->{live_nodes} >= 0, 'live_nodes');
ok((grep { ($_->{field} // '') eq 'team-bad' } @{ $r->{quota_errors} }),
    'bad definition listed') or diag(explain $r);

my %c = map { $_->{name} => $_ } @{ $j->{clients} };
is($c{'team-r'}{quota}{source}, 'redis', 'team-r quota from Redis');
is($c{'team-r'}{quota}{limits}[0]{limit}, 50, 'team-r limit from Redis');
is($c{'team-c'}{quota}{source}, 'config', 'team-c quota from the config');

my $m = $t->get('/status?format=prometheus')->{content};
like($m, qr/^clientguard_redis_up 1$/m, 'clientguard_redis_up');
like($m, qr/^clientguard_redis_quota_sync_age_seconds [0-6]$/m,
     'clientguard_redis_quota_sync_age_seconds');
like($m, qr/^clientguard_redis_quota_errors [1-9]/m,
    'clientguard_redis_quota_errors');

$t->promtool_ok($m, 'promtool check metrics');

# the dashboard renders the Redis health
SKIP: {
    skip 'chromium not installed', 2 unless CG::chromium();

    my $dom = $t->chromium_dom('/status?format=html');
    like($dom, qr/data-loaded="1"/, 'dashboard loaded');
    like($dom, qr{<div id="redis"[^>]*>link ready, failure policy open},
        'dashboard: Redis health');
}

# Redis gone: the link state says so
$t->redis_stop();
$ok = CG::wait_until(sub {
    $j = decode_json($t->get('/status')->{content});
    return $j->{health}{redis}{link_state} ne 'ready';
}, 10);
ok($ok, 'link not ready after Redis stopped')
    or diag(explain $j->{health}{redis});
is($j->{health}{redis}{policy_in_force}, JSON::PP::true, 'policy in force');
ok($j->{health}{redis}{link_outages} >= 1, 'the outage is counted');

$t->allow_alerts();
$t->stop();
done_testing();
