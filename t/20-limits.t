#!/usr/bin/perl
# Limits on one node: rate with burst, per-client overrides, several limits
# at once, the exact RateLimit / RateLimit-Policy / Retry-After headers,
# mode=off, reject status, headers off, the rejection log line, and an
# internal redirect counted once.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['default rate=1r/m burst=2',
               'team-big rate=600r/m burst=4',
               'team-day rate=100r/s burst=100 quota=3/d',
               'team-free mode=off',
               'team-min quota=2/m',
               'team-wide rate=1000000r/s burst=1000000 quota=5000/h'],
    server => 'add_header X-Guard $client_guard_status always;',
    locations => <<'EOF'), access_log => 1);
    location /teapot/ {
        client_guard_reject_status 503;
        client_guard_log_level info;
        empty_gif;
    }

    location /quiet/ {
        client_guard_headers off;
        empty_gif;
    }

    location /redirect/ {
        error_page 404 = /;
        root %%TESTDIR%%/nonexistent;
    }
EOF

$t->start();

sub req { $t->get('/', { 'X-Client-Id' => $_[0] }) }

# default quota: 1r/m with burst 2 admits 3 at once

my $r;
my @r = map { req('team-x') } 1 .. 4;
is(join(' ', map { $_->{status} } @r), '200 200 200 429',
   'burst + 1 requests pass, then 429');
is($r[0]{headers}{'ratelimit-policy'}, '"rate_m";q=1;w=60', 'policy header');
is($r[0]{headers}{'ratelimit'}, '"rate_m";r=2;t=60', 'first: 2 left');
is($r[2]{headers}{'ratelimit'}, '"rate_m";r=0;t=180', 'third: 0 left');
is($r[3]{headers}{'ratelimit'}, '"rate_m";r=0;t=180', 'rejected: 0 left');
is($r[3]{headers}{'retry-after'}, '60', 'Retry-After on rejection');
ok(!defined $r[2]{headers}{'retry-after'}, 'no Retry-After when passed');
is($r[3]{headers}{'x-guard'}, 'REJECTED', '$client_guard_status REJECTED');
is($r[0]{headers}{'x-guard'}, 'PASSED', '$client_guard_status PASSED');

like($t->error_log, qr/\[error\].*client guard: limiting client "team-x" by rate=1r\/m burst=2 \(limit 1 of 1\), retry in \d+ ms, zone "cg"/,
     'rejection logged with client, limit and zone');

# another client has its own counter

is(req('team-y')->{status}, 200, 'clients are counted apart');

# per-client override: 600r/m = 10r/s, burst 4 -> 5 at once

@r = map { req('team-big') } 1 .. 6;
is(join(' ', map { $_->{status} } @r), '200 200 200 200 200 429',
   'per-client quota');
is($r[5]{headers}{'retry-after'}, '1', 'Retry-After rounds up to 1 s');
select(undef, undef, undef, 0.25);
is(req('team-big')->{status}, 200, 'rate refills');

# several limits at once: the day quota binds first

@r = map { req('team-day') } 1 .. 4;
is(join(' ', map { $_->{status} } @r), '200 200 200 429', 'day quota');
is($r[0]{headers}{'ratelimit-policy'},
   '"rate_s";q=100;w=1, "quota_d";q=3;w=86400', 'policy lists both limits');
like($r[1]{headers}{'ratelimit'}, qr/^"quota_d";r=1;t=\d+$/,
     'RateLimit names the binding limit');
like($t->error_log, qr/limiting client "team-day" by quota=3\/d \(limit 2 of 2\)/,
     'log names the day quota');

# large numbers, an hour window

$r = req('team-wide');
is($r->{headers}{'ratelimit-policy'},
   '"rate_s";q=1000000;w=1, "quota_h";q=5000;w=3600', 'policy, large numbers');
like($r->{headers}{'ratelimit'}, qr/^"quota_h";r=4999;t=(\d+)$/,
     'RateLimit of an hour quota');
ok($r->{headers}{'ratelimit'} =~ /t=(\d+)$/ && $1 >= 1 && $1 <= 3600,
   'reset within the hour');

# a window quota alone (counted within one minute)

CG::window_clear(60, 5);
@r = map { req('team-min') } 1 .. 3;
is(join(' ', map { $_->{status} } @r), '200 200 429', 'minute window');
ok($r[2]{headers}{'retry-after'} >= 1 && $r[2]{headers}{'retry-after'} <= 60,
   'Retry-After until the window ends');

# mode=off: never limited, no headers

@r = map { req('team-free') } 1 .. 10;
is(scalar(grep { $_->{status} == 200 } @r), 10, 'mode=off');
is($r[9]{headers}{'x-guard'}, 'BYPASSED', '$client_guard_status BYPASSED');
ok(!defined $r[9]{headers}{'ratelimit'}, 'no headers when bypassed');

# status code and log level per location

$r = $t->get('/teapot/', { 'X-Client-Id' => 'team-x' });
is($r->{status}, 503, 'client_guard_reject_status');
like($t->error_log, qr/\[info\].*limiting client "team-x"/,
     'client_guard_log_level info');

# headers off

$r = $t->get('/quiet/', { 'X-Client-Id' => 'team-x' });
is($r->{status}, 429, 'still limited with headers off');
ok(!defined $r->{headers}{'ratelimit'} && !defined $r->{headers}{'retry-after'}
   && !defined $r->{headers}{'ratelimit-policy'}, 'client_guard_headers off');

# an internal redirect does not count the request twice

my $n = 0;
for (1 .. 3) {
    $r = $t->get('/redirect/x', { 'X-Client-Id' => 'team-redir' });
    $n++ if $r->{status} == 200;
}
is($n, 3, 'three requests through error_page, burst 2 + 1: all pass');
is($t->get('/', { 'X-Client-Id' => 'team-redir' })->{status}, 429,
   'the fourth is limited');

$t->stop();
done_testing();
