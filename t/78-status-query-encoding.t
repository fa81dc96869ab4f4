#!/usr/bin/perl
# Status query values are percent-decoded (strictly, as ngx_unescape_uri()
# decodes, "+" kept as a "+" as in nginx's $arg_ variables) before they are
# read: a client whose name has characters that encodeURIComponent() and
# most HTTP clients encode (":" and "@") is found by ?client= encoded, in
# JSON and Prometheus, and a deploy marker is posted for it; a value that
# cannot be decoded, or decodes to what no client may be named, is a 400
# that names the argument (logged at info); the dashboard and the team's
# own page show such a client; the cluster view finds it as a node does.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['svc:pay@eu rate=100r/s burst=9 quota=1000/h',
               'team-b rate=100r/s burst=9'],
    status => 'deploy_token=enc-token',
    locations => <<'EOF'));
    location = /me {
        client_guard off;
        client_guard_identify_address 127.0.0.1/32 svc:pay@eu;
        client_guard_status_self zone=cg;
    }
EOF

$t->start();

for (1 .. 3) {
    is($t->get('/', { 'X-Client-Id' => 'svc:Pay@EU' })->{status}, 200,
       'svc:pay@eu request');
}
is($t->get('/', { 'X-Client-Id' => 'team-b' })->{status}, 200,
   'team-b request');

sub json {
    my ($q) = @_;
    my $r = $t->get("/status?format=json&$q");
    is($r->{status}, 200, "GET /status?format=json&$q") or diag($r->{content});
    return eval { decode_json($r->{content}) } || {};
}

# the client, by its name encoded as encodeURIComponent() encodes it, in
# either case, or partly encoded
for my $q ('client=svc%3Apay%40eu', 'client=svc%3apay%40EU',
           'client=svc:pay%40eu', 'client=%73vc%3Apay@eu')
{
    my $j = json($q);
    is($j->{clients_total}, 1, "$q: one client");
    is($j->{clients}[0]{name}, 'svc:pay@eu', "$q: the client found");
    is($j->{clients}[0]{requests_total}, 3, "$q: its requests");
    is($j->{query}{client}, 'svc:pay@eu', "$q: the query says the name");
}

# the name unencoded still works, and another client is not shown
is(json('client=svc:pay@eu')->{clients}[0]{name}, 'svc:pay@eu',
   'unencoded name');
is(json('client=team%2Db')->{clients}[0]{name}, 'team-b', 'team%2Db');

# every value is decoded: format, sort, limit, history, scope
my $j = json('sort=%6Eame&limit=%31&history=%30&scope=%6Eode');
is($j->{clients_shown}, 1, 'limit=%31: one row');
is($j->{clients}[0]{name}, 'svc:pay@eu', 'sort=%6Eame: by name');
is($j->{query}{sort}, 'name', 'query.sort');

my $r = $t->get('/status?format=%70rometheus&client=svc%3Apay%40eu');
is($r->{status}, 200, 'Prometheus, encoded') or diag($r->{content});
like($r->{content}, qr/^clientguard_requests_total\{zone="cg",client="svc:pay\@eu"\} 3$/m,
     'Prometheus: the client, its label the name');
unlike($r->{content}, qr/client="team-b"/, 'Prometheus: only that client');

# refused: the argument named in the answer and the log
my @bad = (
    [ 'client=team%2Fa',  'client', 'decodes to "team/a": no client name' ],
    [ 'client=team%20x',  'client', 'decodes to "team x"' ],
    [ 'client=team+x',    'client', '"+" is a "+", not a space' ],
    [ 'client=svc%3Apay%40eu%zz', 'client', '"%zz" cannot be decoded' ],
    [ 'client=svc%3', 'client', 'a "%" without two hex digits' ],
    [ 'client=%00', 'client', 'a NUL' ],
    [ 'format=json%', 'format', 'format: a lone "%"' ],
    [ 'sort=name%2', 'sort', 'sort: "%2"' ],
    [ 'limit=%3x', 'limit', 'limit: "%3x"' ],
    [ 'scope=no%64e%', 'scope', 'scope: a trailing "%"' ],
);

for my $b (@bad) {
    my ($q, $arg, $why) = @$b;
    my $r = $t->get("/status?$q");
    is($r->{status}, 400, "$q: 400 ($why)");
    is($r->{headers}{'content-type'}, 'application/json', "$q: JSON");
    my $e = eval { decode_json($r->{content}) } || {};
    is($e->{argument}, $arg, "$q: names \"$arg\"") or diag($r->{content});
}

ok($t->wait_for_log(qr/client guard status: bad query argument "client"/),
   'refusal logged, naming the argument');

# a deploy marker for that team, its name encoded
$r = $t->request('POST', '/status?deploy=svc%3Apay%40eu&note=v2+canary',
                 { Authorization => 'Bearer enc-token' });
is($r->{status}, 201, 'POST deploy=svc%3Apay%40eu: 201') or diag($r->{content});
is((eval { decode_json($r->{content}) } || {})->{deploy}{team}, 'svc:pay@eu',
   'marker team decoded');
is($t->request('POST', '/status?deploy=team%2Fa',
               { Authorization => 'Bearer enc-token' })->{status}, 400,
   'POST deploy=team%2Fa: 400');
is($t->request('POST', '/status?deploy=team%zz',
               { Authorization => 'Bearer enc-token' })->{status}, 400,
   'POST deploy=team%zz: 400');

# a team's own view decodes its format= too
$r = $t->get('/me?format=%68tml');
is($r->{status}, 200, '/me?format=%68tml: 200');
like($r->{headers}{'content-type'}, qr{^text/html}, '/me?format=%68tml: HTML');
$r = $t->get('/me?format=%6Ason');
is((eval { decode_json($r->{content}) } || {})->{client}{name}, 'svc:pay@eu',
   '/me?format=%6Ason: JSON about the team');
is($t->get('/me?format=json%')->{status}, 400, '/me?format=json%: 400');

# the pages show such a client (headless Chromium, when installed)
SKIP: {
    skip 'chromium not installed', 3 unless CG::chromium();

    my $dom = $t->chromium_dom('/status?format=html', 4000);
    like($dom, qr/<tr[^>]*data-client="svc:pay\@eu"/,
         'dashboard: the client\'s row');

    # Chromium sends no X-Client-Id: /me names 127.0.0.1 svc:pay@eu
    $dom = $t->chromium_dom('/me?format=html', 4000);
    like($dom, qr{<h2 id="team" data-client="svc:pay\@eu">svc:pay\@eu</h2>},
         'self page: the team named');
    like($dom, qr/v2 canary/, 'self page: its deploy');
}

$t->stop();

# the cluster view reads the same query (with Redis, when installed)
SKIP: {
    skip 'redis-server not installed', 3
        unless `command -v redis-server 2>/dev/null`;

    my $c = CG->new();
    $c->redis_start();
    $c->write_conf(CG::http(redis => 1, status => 1,
        http => 'client_guard_status_publish interval=300ms;'));
    $c->start();

    $c->get('/', { 'X-Client-Id' => 'svc:pay@eu' }) for 1 .. 2;
    $c->get('/', { 'X-Client-Id' => 'team-b' });

    my $j;
    ok(CG::wait_until(sub {
        my $r = $c->get('/status?scope=cluster&client=svc%3Apay%40eu');
        return 0 unless $r->{status} == 200;
        $j = decode_json($r->{content});
        return $j->{clients_total} == 1
            && $j->{clients}[0]{requests_total} == 2;
    }, 10), 'cluster view: the client by its encoded name') or diag(explain $j);
    is($j->{clients}[0]{name}, 'svc:pay@eu', 'cluster view: its name');
    is($c->get('/status?scope=cluster&client=svc%3')->{status}, 400,
       'cluster view: what cannot be decoded is a 400');

    $c->stop();
}

done_testing();
