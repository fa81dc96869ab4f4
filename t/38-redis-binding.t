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

# the first rejection comes before Redis's answer says when units free
# up: it says the day's end all the same, and so do those after it
my $left = 86400 - time % 86400;
my @ra = ($r[3]{headers}{'retry-after'} // 0,
          map { $t->get('/', { 'X-Client-Id' => 'team-d' })
                  ->{headers}{'retry-after'} // 0 } 1 .. 2);
my @off = grep { abs($_ - $left) > 3 } @ra;
is(scalar(@off), 0, "Retry-After is the day's end ($left s), first "
   . 'rejection included') or diag("@ra");
ok($t->wait_for_log(qr/limiting client "team-d" by quota=3\/d \(limit 2 of 2\)/),
   'the rejection log names the day quota');

$t->stop();
done_testing();
