#!/usr/bin/perl
# Status endpoint, JSON: shape and values after known traffic; responses by
# class and code with the module's own rejections apart; quota view; query
# arguments; upstream time; counters survive a reload; format negotiation;
# deploy markers by POST.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['team-a rate=100r/s burst=9 quota=1000/h',
               'team-b rate=1r/m burst=2',
               'team-dry rate=1r/m burst=0 mode=dry_run'],
    server => 'client_guard_log_level info;',
    status => 'deploy_token=s3cret-token',
    locations => <<'LOCATIONS', http => <<'BACKEND'));
    location /up/ {
        proxy_pass http://127.0.0.1:%%PORT1%%/;
    }

    location /status-small {
        client_guard off;
        client_guard_status zone=cg limit=2;
    }
LOCATIONS
    server {
        listen 127.0.0.1:%%PORT1%%;

        location / {
            empty_gif;
        }

        location /e401 {
            return 401;
        }

        location /e503 {
            return 503;
        }

        location /e404 {
            return 404;
        }
    }
BACKEND

$t->start();

sub req {
    my ($client, $path, $n) = @_;
    my %st;
    for (1 .. ($n || 1)) {
        my $r = $t->get($path, { 'X-Client-Id' => $client });
        $st{$r->{status}}++;
    }
    return \%st;
}

sub status {
    my ($q, $h) = @_;
    my $r = $t->get('/status' . (defined $q ? "?$q" : ''), $h);
    is($r->{status}, 200, "GET /status?" . ($q || '')) or diag($r->{content});
    return $r;
}

sub json {
    my $r = status(@_);
    my $j = eval { decode_json($r->{content}) };
    ok($j, 'valid JSON') or diag($@, $r->{content});
    return $j || {};
}

sub client {
    my ($j, $name) = @_;
    my ($c) = grep { $_->{name} eq $name } @{ $j->{clients} };
    return $c;
}

# known traffic
is_deeply(req('team-a', '/', 5), { 200 => 5 }, 'team-a 5 x 200');
is_deeply(req('team-a', '/up/e401', 2), { 401 => 2 }, 'team-a 2 x 401');
is_deeply(req('team-a', '/up/e404', 1), { 404 => 1 }, 'team-a 1 x 404');
is_deeply(req('team-a', '/up/e503', 1), { 503 => 1 }, 'team-a 1 x 503');
is_deeply(req('team-a', '/up/', 1), { 200 => 1 }, 'team-a proxied 200');
is_deeply(req('team-b', '/', 5), { 200 => 3, 429 => 2 },
    'team-b: 3 admitted, 2 rejected');
is_deeply(req('team-dry', '/', 3), { 200 => 3 }, 'team-dry: all pass');

my $j = json();

is($j->{schema_version}, 2, 'schema_version');
is($j->{zone}, 'cg', 'zone');
is($j->{scope}, 'node', 'scope');
ok($j->{time_ms} > 1.6e12, 'time_ms');
is($j->{clients_total}, 3, 'clients_total');
is($j->{clients_shown}, 3, 'clients_shown');
is($j->{health}{clients_tracked}, 3, 'health.clients_tracked');
ok($j->{health}{zone_size_bytes} == 1048576, 'zone_size_bytes');
ok($j->{health}{zone_used_bytes} > 0
    && $j->{health}{zone_used_bytes} < 1048576, 'zone_used_bytes');
is($j->{health}{evictions_total}, 0, 'evictions_total');
is($j->{health}{unidentified_total}{no_rule}, 0, 'unidentified no_rule');
ok($j->{health}{record_bytes} > 0, 'record_bytes');
diag("record bytes without the name: $j->{health}{record_bytes}");
ok($j->{health}{record_bytes} + 128 <= 1024,
    'a record with the longest name (128) fits in 1 KiB');
ok(exists $j->{health}{redis}, 'health.redis');
is(ref $j->{top_movers}, 'ARRAY', 'top_movers');
is(ref $j->{deploys}, 'ARRAY', 'deploys');

# default order: requests, descending
is($j->{clients}[0]{name}, 'team-a', 'sorted by requests');

my $a = client($j, 'team-a');
is($a->{requests_total}, 10, 'team-a requests_total');
is($a->{passed_total}, 10, 'team-a passed_total');
is($a->{rejected_total}, 0, 'team-a rejected_total');
is($a->{responses_total}, 10, 'team-a responses_total');
is_deeply($a->{responses_by_class_total},
    { '1xx' => 0, '2xx' => 6, '3xx' => 0, '4xx' => 3, '5xx' => 1 },
    'team-a by class');
is($a->{responses_by_code_total}{401}, 2, 'team-a 401');
is($a->{responses_by_code_total}{404}, 1, 'team-a 404');
is($a->{responses_by_code_total}{503}, 1, 'team-a 503');
is($a->{responses_by_code_total}{429}, 0, 'team-a 429');
is($a->{upstream_responses_total}, 5, 'team-a upstream responses');
ok($a->{rate_10s_per_s} > 0, 'team-a rate_10s_per_s > 0');
ok($a->{rate_1m_per_s} > 0 && $a->{rate_1m_per_s} < $a->{rate_10s_per_s},
    'team-a 1 min rate below 10 s rate');
ok($a->{error_rate_10s_per_s} > 0, 'team-a error rate');
ok(defined $a->{request_time_mean_s}, 'request_time_mean_s');
ok($a->{request_time_p99_s} > 0, 'request_time_p99_s');
ok(defined $a->{upstream_time_mean_s}, 'upstream_time_mean_s');
is($a->{quota}{mode}, 'enforce', 'team-a quota mode');
is(scalar @{ $a->{quota}{limits} }, 2, 'team-a 2 limits');

my ($rate, $win) = @{ $a->{quota}{limits} };
is($rate->{type}, 'rate', 'limit 1 is a rate');
is($rate->{limit}, 100, 'rate limit');
is($rate->{capacity}, 10, 'rate capacity = burst + 1');
is($rate->{used} + $rate->{remaining}, 10, 'used + remaining = capacity');
is($win->{type}, 'window', 'limit 2 is a window');
is($win->{limit}, 1000, 'window limit');
is($win->{window_s}, 3600, 'window_s');
is($win->{used}, 10, 'window used = admitted requests');
is($win->{remaining}, 990, 'window remaining');
ok(abs($win->{utilisation} - 0.01) < 0.001, 'window utilisation');
ok(!$win->{near_limit}, 'window not near limit');
is(ref $a->{anomalies}, 'ARRAY', 'anomalies');

my $b = client($j, 'team-b');
is($b->{requests_total}, 5, 'team-b requests');
is($b->{rejected_total}, 2, 'team-b rejected (own)');
is($b->{responses_by_code_total}{429}, 0, 'own 429s are not responses');
is($b->{responses_total}, 3, 'team-b responses exclude own rejections');
is($b->{quota}{limits}[0]{remaining}, 0, 'team-b rate exhausted');
ok($b->{quota}{limits}[0]{near_limit}, 'team-b near_limit');
ok($b->{quota}{near_limit}, 'team-b quota near_limit');
is($b->{quota}{utilisation}, 1, 'team-b utilisation 1');

my $d = client($j, 'team-dry');
is($d->{rejected_dry_run_total}, 2, 'team-dry dry-run rejected');
is($d->{rejected_total}, 0, 'team-dry not rejected');
is($d->{responses_by_class_total}{'2xx'}, 3, 'team-dry answered');
is($d->{quota}{mode}, 'dry_run', 'team-dry mode');

# query arguments
$j = json('client=TEAM-B');
is($j->{clients_shown}, 1, 'client= shows one');
is($j->{clients}[0]{name}, 'team-b', 'client= normalised');
$j = json('client=nobody');
is($j->{clients_shown}, 0, 'unknown client: none');
$j = json('sort=name');
is(join(',', map { $_->{name} } @{ $j->{clients} }),
    'team-a,team-b,team-dry', 'sort=name');
$j = json('sort=rejected&limit=1');
is($j->{clients_shown}, 1, 'limit=1');
is($j->{clients_total}, 3, 'limit does not change clients_total');
is($j->{clients}[0]{name}, 'team-b', 'sort=rejected');
$j = json('sort=quota&limit=1');
is($j->{clients}[0]{name}, 'team-b', 'sort=quota');
for my $s (qw(rate rate_1m rate_5m errors anomaly requests)) {
    $j = json("sort=$s");
    is($j->{clients_shown}, 3, "sort=$s");
}
is($t->get('/status?sort=bogus')->{status}, 400, 'bad sort: 400');
is($t->get('/status?format=xml')->{status}, 400, 'bad format: 400');
is($t->get('/status?limit=x')->{status}, 400, 'bad limit: 400');
is($t->get('/status?scope=cluster')->{status}, 503,
    'scope=cluster without Redis: 503');
is($t->get('/status?scope=planet')->{status}, 400, 'bad scope: 400');

my $r = $t->get('/status-small');
$j = decode_json($r->{content});
is($j->{clients_shown}, 2, 'limit= from the directive');

# negotiation
$r = status(undef, { Accept => 'application/openmetrics-text; version=1.0.0' });
like($r->{headers}{'content-type'}, qr{^application/openmetrics-text},
    'Accept: openmetrics');
like($r->{content}, qr/\n# EOF\n\z/, 'OpenMetrics ends with # EOF');
$r = status(undef, { Accept => 'text/plain' });
like($r->{headers}{'content-type'}, qr{^text/plain; version=0.0.4},
    'Accept: text/plain is Prometheus');
$r = status(undef, { Accept => 'text/html,application/xhtml+xml' });
like($r->{headers}{'content-type'}, qr{^text/html}, 'Accept: text/html');
like($r->{content}, qr/<html/i, 'dashboard');
$r = status('format=json', { Accept => 'text/html' });
like($r->{headers}{'content-type'}, qr{^application/json},
    'format= wins over Accept');
$r = $t->request('HEAD', '/status');
is($r->{status}, 200, 'HEAD');
ok(!length($r->{content} // ''), 'HEAD: no body');

# deploy markers
is($t->request('POST', '/status?deploy=team-a&note=v42')->{status}, 403,
    'POST without token: 403');
is($t->request('POST', '/status?deploy=team-a',
    { Authorization => 'Bearer wrong-token!' })->{status}, 403,
    'POST with a wrong token: 403');
is($t->request('POST', '/status-small?deploy=team-a',
    { Authorization => 'Bearer s3cret-token' })->{status}, 405,
    'POST where no token is configured: 405');
$r = $t->request('POST', '/status?deploy=Team-A&note=v42+%22canary%22',
    { Authorization => 'Bearer s3cret-token' });
is($r->{status}, 201, 'POST deploy marker: 201') or diag($r->{content});
$j = decode_json($r->{content});
is($j->{deploy}{team}, 'team-a', 'marker team normalised');
is($j->{deploy}{note}, 'v42 _canary_', 'marker note sanitised');
is($t->request('POST', '/status?note=x',
    { Authorization => 'Bearer s3cret-token' })->{status}, 400,
    'POST without deploy=: 400');

$j = json();
is($j->{deploys_total}, 1, 'deploys_total');
is($j->{deploys}[0]{team}, 'team-a', 'marker round trip: team');
is($j->{deploys}[0]{note}, 'v42 _canary_', 'marker round trip: note');
ok(abs($j->{deploys}[0]{time_ms} - $j->{time_ms}) < 60000,
    'marker round trip: time');

# counters survive reading and a reload
$j = json();
is(client($j, 'team-a')->{requests_total}, 10, 'reading resets nothing');
ok($t->reload(), 'reload');
$j = json();
is(client($j, 'team-a')->{requests_total}, 10, 'counters survive reload');
is($j->{deploys_total}, 1, 'deploy markers survive reload');
req('team-a', '/', 1);
$j = json();
is(client($j, 'team-a')->{requests_total}, 11, 'counting goes on');

$t->stop();

# directive errors
my @bad = (
    [ 'location /s { client_guard_status limit=0; }',
      qr/invalid "limit" value "limit=0" in "client_guard_status"/ ],
    [ 'location /s { client_guard_status deploy_token=short; }',
      qr/"deploy_token" of "client_guard_status" must have at least 8/ ],
    [ 'location /s { client_guard_status zone=nope; }',
      qr/nope/ ],
    [ 'location /s { client_guard_status foo; }',
      qr/invalid parameter "foo" in "client_guard_status"/ ],
    [ 'location /s { client_guard_status; client_guard_status; }',
      qr/"client_guard_status" directive is duplicate/ ],
);

for my $b (@bad) {
    my ($rc, $out) = $t->nginx_test_conf(
        "client_guard_zone zone=cg:1m;\nserver { listen 127.0.0.1:%%PORT%%; "
        . "$b->[0] }\n");
    isnt($rc, 0, "nginx -t fails: $b->[0]");
    like($out, $b->[1], "message: $b->[0]");
}

for my $b ('client_guard_status_publish interval=1ms;',
           'client_guard_status_publish clients=0;',
           'client_guard_anomaly min_rate=0;')
{
    my ($rc, $out) = $t->nginx_test_conf("client_guard_zone zone=cg:1m;\n$b\n");
    isnt($rc, 0, "nginx -t fails: $b");
    like($out, qr/invalid parameter/, "message: $b");
}

my ($rc, $out) = $t->nginx_test_conf(<<'EOF2');
client_guard_zone zone=cg:1m;
client_guard_status_publish interval=5s clients=200;
client_guard_anomaly ratio=4 min_rate=0.5 errors=20% min_errors=0.5 step=5s;
server { listen 127.0.0.1:%%PORT%%; location /s { client_guard_status zone=cg limit=50 deploy_token=12345678; } }
EOF2
is($rc, 0, 'nginx -t accepts every status directive') or diag($out);

done_testing();
