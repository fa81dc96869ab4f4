#!/usr/bin/perl
# A team's own view (client_guard_status_self): the calling client, named by
# the location's rules as its requests are, gets its own row of the status
# (quota use, rejections, rates, errors, history, detector) and its own
# deploy markers, and nothing of any other client: with many teams sending
# traffic and posting markers, the answer for team-a names no other.  No
# query argument selects another client; an unidentified caller gets the
# fallback's view, or the unidentified status when the fallback is off; the
# request is not counted unless the location is guarded.  The page renders
# in headless Chromium (CG_SCREENSHOT=path also saves a screenshot).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my $t = CG->new();

# names none of which contains another
my @others = map { sprintf 'svc-%02d-x', $_ } 1 .. 30;

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['default rate=1000r/s burst=100',
               'team-a rate=5r/s burst=4 quota=1000/h',
               'team-b rate=1r/m burst=1'],
    status => 'deploy_token=self-token',
    locations => <<'LOCATIONS', http => <<'BACKEND'));
    location /up/ {
        proxy_pass http://127.0.0.1:%%PORT1%%/;
    }

    location = /me {
        client_guard off;
        client_guard_status_self zone=cg;
    }

    location = /me-strict {
        client_guard off;
        client_guard_fallback off;
        client_guard_status_self zone=cg;
    }

    location = /me-404 {
        client_guard off;
        client_guard_fallback off;
        client_guard_unidentified_status 404;
        client_guard_status_self;
    }

    location = /me-guarded {
        client_guard_status_self;
    }

    location = /me-by-address {
        client_guard off;
        client_guard_identify_address 127.0.0.1/32 team-a;
        client_guard_status_self zone=cg;
    }
LOCATIONS
    server {
        listen 127.0.0.1:%%PORT1%%;

        location / {
            empty_gif;
        }

        location /e404 {
            return 404;
        }

        location /e500 {
            return 500;
        }
    }
BACKEND

$t->start();

sub get_as {
    my ($client, $path, $h) = @_;
    return $t->get($path, { %{ $h || {} },
                            defined $client ? ('X-Client-Id' => $client)
                                            : () });
}

sub json_of {
    my ($r, $what) = @_;
    my $j = eval { decode_json($r->{content}) };
    ok($j, "$what: valid JSON") or diag($@, $r->{content});
    return $j || {};
}

sub status_client {
    my ($name) = @_;
    my $j = decode_json($t->get("/status?client=$name&history=1")->{content});
    return $j->{clients}[0] || {};
}

sub post_deploy {
    my ($team, $note) = @_;
    return $t->request('POST', "/status?deploy=$team&note=$note",
        { Authorization => 'Bearer self-token' })->{status};
}

# traffic: many teams, team-a with 4xx, 5xx and rejections, unidentified
# requests (the fallback "unknown"), deploy markers of several teams

for my $name (@others) {
    get_as($name, '/') for 1 .. 2;
    get_as($name, '/up/e404');
}
get_as(undef, '/') for 1 .. 3;

get_as('team-a', '/up/e404') for 1 .. 3;
get_as('team-a', '/up/e500') for 1 .. 2;
my %st;
$st{ get_as('team-a', '/')->{status} }++ for 1 .. 15;
ok($st{429}, 'team-a was limited') or diag(explain \%st);

is(post_deploy('team-a', 'v1'), 201, 'team-a deploy marker');
is(post_deploy($others[0], 'other'), 201, 'another team\'s marker');
is(post_deploy($others[1], 'more'), 201, 'and one more');

# --- team-a's own view --------------------------------------------------------

my $r = get_as('team-a', '/me');
is($r->{status}, 200, 'GET /me as team-a');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON');
is($r->{headers}{'cache-control'}, 'private, no-store',
    'kept by no shared cache');
my $j = json_of($r, '/me');
my $c = $j->{client} || {};

is($j->{view}, 'self', 'view');
is($j->{zone}, 'cg', 'zone');
is($j->{schema_version}, 2, 'schema_version');
ok($j->{identified}, 'identified');
is($j->{unidentified_reason}, '', 'no unidentified reason');
ok($j->{tracked}, 'tracked');
is($c->{name}, 'team-a', 'the caller');

unlike($r->{content}, qr/\Q$_\E/, "no $_ in the answer")
    for @others, 'team-b', 'unknown';
ok(!(grep { $r->{content} =~ /\Q$_\E/ } @others),
    'no other team anywhere in the answer');

is($c->{requests_total}, 20, 'requests');
is($c->{rejected_total}, $st{429}, 'rejections');
is($c->{responses_by_class_total}{'4xx'}, 3, '4xx answers');
is($c->{responses_by_class_total}{'5xx'}, 2, '5xx answers');
ok($c->{rate_10s_per_s} > 0, 'request rate');
ok(exists $c->{error_rate_10s_per_s} && exists $c->{error_5xx_rate_10s_per_s},
    '4xx and 5xx rates');
ok($c->{rejected_rate_10s_per_s} > 0, 'rejection rate');

my $q = $c->{quota} || {};
is($q->{source}, 'config', 'quota source');
is(scalar @{ $q->{limits} || [] }, 2, 'two limits');
my ($rate, $win) = @{ $q->{limits} || [] };
is($rate->{type}, 'rate', 'a rate');
is($rate->{capacity}, 5, 'rate capacity: burst + 1');
is($win->{type}, 'window', 'a window');
is($win->{limit}, 1000, 'window limit');
is($win->{used}, 20 - $st{429}, 'window used: what passed');
is($win->{remaining}, 1000 - $win->{used}, 'window remaining');

my $h = $c->{history} || {};
ok($h->{steps} >= 1, 'history');
my $offered = 0;
$offered += $_ for @{ $h->{offered} || [] };
is($offered, 20, 'history: every request offered');
my $rejected = 0;
$rejected += $_ for @{ $h->{rejected} || [] };
is($rejected, $st{429}, 'history: the rejections');

is($c->{detector}{state}, 'young', 'detector: young');
is_deeply($c->{anomalies}, [], 'no anomaly');

is(scalar @{ $j->{deploys} || [] }, 1, 'one deploy marker: its own');
is($j->{deploys}[0]{team}, 'team-a', 'marker team');
is($j->{deploys}[0]{note}, 'v1', 'marker note');

# the same figures as the status shows for team-a
my $s = status_client('team-a');
for my $k (qw(requests_total passed_total rejected_total
              responses_by_class_total responses_by_code_total)) {
    is_deeply($c->{$k}, $s->{$k}, "$k as in the status");
}
is_deeply([ map { [ @$_{qw(type limit window_s burst capacity)} ] }
            @{ $q->{limits} } ],
          [ map { [ @$_{qw(type limit window_s burst capacity)} ] }
            @{ $s->{quota}{limits} } ], 'limits as in the status');
is($q->{limits}[1]{used}, $s->{quota}{limits}[1]{used},
    'window use as in the status');
is_deeply($h->{offered}, $s->{history}{offered}, 'history as in the status');

# --- nothing selects another client -----------------------------------------

for my $qs ("client=$others[0]", "client=team-b", "name=team-b",
            "client=$others[0]&format=json")
{
    $r = get_as('team-a', "/me?$qs");
    is($r->{status}, 200, "?$qs answers");
    is(json_of($r, "?$qs")->{client}{name}, 'team-a', "?$qs: still team-a");
    unlike($r->{content}, qr/\Q$others[0]\E|team-b/, "?$qs: no other name");
}

is(get_as('team-a', '/me?format=prometheus')->{status}, 400,
    'format=prometheus: 400');
is($t->request('POST', '/me', { 'X-Client-Id' => 'team-a' })->{status}, 405,
    'POST: 405');
is($t->request('HEAD', '/me', { 'X-Client-Id' => 'team-a' })->{status}, 200,
    'HEAD');

# --- the view is not counted, unless the location is guarded --------------

get_as('team-a', '/me') for 1 .. 5;
is(status_client('team-a')->{requests_total}, 20,
    'the view does not count as a request');

# team-b: rate=1r/m burst=1, nothing sent yet; a guarded view counts
$r = get_as('team-b', '/me-guarded');
is($r->{status}, 200, 'guarded view');
is(json_of($r, 'guarded')->{client}{requests_total}, 1,
    'a guarded view counts itself');
ok($r->{headers}{ratelimit}, 'and carries the RateLimit header');
is(get_as('team-b', '/me-guarded')->{status}, 200, 'second: in the burst');
is(get_as('team-b', '/me-guarded')->{status}, 429, 'third: limited');
$c = json_of(get_as('team-b', '/me'), 'team-b')->{client};
is($c->{requests_total}, 3, 'team-b: three requests');
is($c->{rejected_total}, 1, 'team-b: one rejected');

# --- unidentified callers -----------------------------------------------------

$r = get_as(undef, '/me');
is($r->{status}, 200, 'unidentified: the fallback\'s view');
$j = json_of($r, 'unidentified');
is($j->{client}{name}, 'unknown', 'the fallback client');
ok(!$j->{identified}, 'not identified');
is($j->{unidentified_reason}, 'no_rule', 'reason: no rule');
is($j->{client}{requests_total}, 3, 'the unidentified requests');
unlike($r->{content}, qr/team-a|\Q$others[0]\E/, 'no team named');

$j = json_of(get_as('bad name!', '/me'), 'invalid');
is($j->{unidentified_reason}, 'invalid_name', 'reason: invalid name');
is($j->{client}{name}, 'unknown', 'invalid name: the fallback');

is(get_as(undef, '/me-strict')->{status}, 403,
    'fallback off: the unidentified status');
is(get_as('bad name!', '/me-strict')->{status}, 403, 'and for invalid');
is(json_of(get_as('team-a', '/me-strict'), 'strict')->{client}{name},
    'team-a', 'fallback off: identified callers answered');
is(get_as(undef, '/me-404')->{status}, 404,
    'client_guard_unidentified_status 404');
is(json_of(get_as('team-a', '/me-404'), 'first zone')->{zone}, 'cg',
    'no zone=: the first zone');

# --- a client this node has not seen ------------------------------------------

$r = get_as('team-new', '/me');
$j = json_of($r, 'team-new');
is($j->{client}{name}, 'team-new', 'a new client: its own name');
ok(!$j->{tracked}, 'not tracked');
is($j->{client}{requests_total}, 0, 'nothing counted');
is($j->{client}{quota}{limits}[0]{remaining}, 101,
    'its quota, unused (the default)');
unlike($r->{content}, qr/team-a|\Q$others[0]\E/, 'no other team named');
is(status_client('team-new')->{name}, undef, 'and no record made for it');

# --- the page -------------------------------------------------------------------

$r = get_as('team-a', '/me?format=html');
is($r->{status}, 200, 'format=html');
like($r->{headers}{'content-type'}, qr{^text/html}, 'text/html');
is($r->{headers}{'cache-control'}, 'private, no-store', 'page not cached');
unlike($r->{content}, qr{(?:src|href)\s*=\s*["']?(?:https?:)?//}i,
    'no external script, style or link');
unlike($r->{content}, qr{\@import|url\(\s*["']?(?:https?:)?//}i,
    'no external CSS');
like($r->{content}, qr{fetch\(location\.pathname}, 'reads its own location');
like(get_as('team-a', '/me', { Accept => 'text/html,*/*' })->{content},
     qr{<!doctype html>}i, 'Accept: text/html gives the page');
is(get_as(undef, '/me-strict?format=html')->{status}, 403,
    'the page is refused as the JSON is');

SKIP: {
    skip 'chromium not installed', 9 unless CG::chromium();

    # Chromium sends no X-Client-Id: this location names 127.0.0.1 team-a
    my $dom = $t->chromium_dom('/me-by-address', 4000);
    like($dom, qr/data-loaded="1"/, 'page: loaded the JSON');
    like($dom, qr{<h2 id="team" data-client="team-a">team-a</h2>},
        'page: the team\'s name');
    like($dom, qr{<tr data-limit="1"[^>]*><td>5 per s, burst 4</td>},
        'page: the rate limit');
    like($dom, qr{<tr data-limit="2"[^>]*><td>1000 per h \(window\)</td>},
        'page: the window');
    my $nrej = $st{429};
    my $card = '<div class="card" data-k="rejected"><div class="k">'
        . "rejected</div><div class=\"v\">$nrej</div>";
    like($dom, qr/\Q$card\E/, 'page: rejections');
    like($dom, qr{<rect[^>]*data-series="offered"}, 'page: history');
    like($dom, qr{data-deploy="v1"}, 'page: its deploy on the chart');
    ok(!(grep { $dom =~ /\Q$_\E/ } @others, 'team-b', 'unknown'),
        'page: no other team');
    unlike($dom, qr{\bother\b|\bmore\b}, 'page: no other team\'s marker');

    if ($ENV{CG_SCREENSHOT}) {
        $t->chromium_run('--virtual-time-budget=4000',
            '--window-size=1100,1000', "--screenshot=$ENV{CG_SCREENSHOT}",
            'http://127.0.0.1:' . $t->port(0) . '/me-by-address');
        diag("screenshot $ENV{CG_SCREENSHOT}");
    }
}

# --- configuration errors ------------------------------------------------------

$t->stop();

my $tc = CG->new();
my ($rc, $out) = $tc->nginx_test_conf(CG::http(locations => <<'EOF'));
    location /x { client_guard_status_self zone=nope; }
EOF
isnt($rc, 0, 'an undeclared zone is refused');
($rc, $out) = $tc->nginx_test_conf(CG::http(locations => <<'EOF'));
    location /x { client_guard_status_self limit=3; }
EOF
like($out, qr/invalid parameter "limit=3" in "client_guard_status_self"/,
    'an unknown parameter is refused');
($rc, $out) = $tc->nginx_test_conf(CG::http(server =>
    'client_guard_status_self;'));
like($out, qr/"client_guard_status_self" directive is not allowed here/,
    'a location only');

done_testing();
