#!/usr/bin/perl
# With cluster-wide counting, the limit that decides is the one Redis says
# cut the lease short: headers and the rejection log name it, not simply the
# first limit of the quota.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();
$t->redis_start();

$t->write_conf(CG::http(
    quotas => ['team-d rate=100r/s burst=100 quota=3/d'],
    redis => 1,
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'));

$t->start();

ok($t->wait_for_link, 'the link is up');

my @r = map { $t->get('/', { 'X-Client-Id' => 'team-d' }) } 1 .. 4;
is(join(' ', map { $_->{status} } @r), '200 200 200 429',
   'the day quota of 3 holds');
like($r[0]{headers}{'x-redis'}, qr/^(LEASE|WAITED)$/, 'counted through Redis');
like($r[3]{headers}{'ratelimit'}, qr/^"quota_d";r=0;/,
     'RateLimit names the day quota');
is($r[0]{headers}{'ratelimit-policy'},
   '"rate_s";q=100;w=1, "quota_d";q=3;w=86400', 'RateLimit-Policy');
like($r[3]{headers}{'retry-after'}, qr/^\d+$/, 'Retry-After');
ok($t->wait_for_log(qr/limiting client "team-d" by quota=3\/d \(limit 2 of 2\)/),
   'the rejection log names the day quota');

$t->stop();
done_testing();
