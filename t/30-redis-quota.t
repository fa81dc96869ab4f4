#!/usr/bin/perl

# Quota definitions read from Redis: enforced, changed by redis-cli while
# traffic flows (effective within 1 s, no reload), bad values logged once
# with key/field/value while the last good definition stays, the config
# table as fallback, and the client_guard_redis* directives' errors.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = CG->new();

# --- directive errors --------------------------------------------------------

my @bad = (
    [ 'client_guard_redis 127.0.0.1:99999;', qr/invalid address "127\.0\.0\.1:99999" in "client_guard_redis"/ ],
    [ 'client_guard_redis 127.0.0.1:6379 foo=1;', qr/invalid parameter "foo=1" in "client_guard_redis"/ ],
    [ 'client_guard_redis 127.0.0.1:6379 timeout=abc;', qr/invalid timeout "abc" in "client_guard_redis"/ ],
    [ 'client_guard_redis 127.0.0.1:6379 db=x;', qr/invalid parameter "db=x" in "client_guard_redis"/ ],
    [ 'client_guard_redis 127.0.0.1:6379 "prefix={x}";', qr/invalid parameter "prefix=\{x\}"/ ],
    [ "client_guard_redis 127.0.0.1:6379;\nclient_guard_redis_failure maybe;", qr/invalid value "maybe" in "client_guard_redis_failure"/ ],
    [ "client_guard_redis 127.0.0.1:6379;\nclient_guard_redis_failure closed=200;", qr/invalid value "closed=200" in "client_guard_redis_failure"/ ],
    [ "client_guard_redis 127.0.0.1:6379;\nclient_guard_redis_failure open nodes=2;", qr/invalid parameter "nodes=2" in "client_guard_redis_failure"/ ],
    [ "client_guard_redis 127.0.0.1:6379;\nclient_guard_redis_lease 5ms;", qr/invalid value "5ms" in "client_guard_redis_lease"/ ],
    [ 'client_guard_redis_failure open;', qr/need "client_guard_redis"/ ],
    [ 'client_guard_redis 127.0.0.1:6379 127.0.0.1:6380;', qr/"client_guard_redis" directive has several addresses: a Redis Cluster needs "cluster"/ ],
    [ 'client_guard_redis 127.0.0.1:6379 user=app;', qr/"client_guard_redis" directive has "user=" without "password="/ ],
    [ 'client_guard_redis 127.0.0.1:6379 cluster sentinel=m;', qr/invalid parameter "sentinel=m" in "client_guard_redis"/ ],
    [ 'client_guard_redis 127.0.0.1:6379 cluster db=1;', qr/a Redis Cluster has only db 0/ ],
    [ 'client_guard_redis 127.0.0.1:6379 tls_verify=maybe;', qr/invalid parameter "tls_verify=maybe" in "client_guard_redis"/ ],
    [ 'client_guard_redis password=x;', qr/"client_guard_redis" directive needs an address/ ],
);

for my $b (@bad) {
    my ($rc, $out) = $t->nginx_test_conf("client_guard_zone zone=z:1m;\n$b->[0]\n");
    isnt($rc, 0, "nginx -t fails: $b->[0]");
    like($out, $b->[1], "message names directive and value: $b->[0]");
}

my ($rc, $out) = $t->nginx_test_conf(<<'EOF');
client_guard_zone zone=z:1m;
client_guard_redis unix:/tmp/cg-none.sock user=app password=secret db=2 prefix=x: connect_timeout=50ms timeout=20ms;
client_guard_redis_failure local nodes=3;
client_guard_redis_lease 50ms refresh=200ms;
EOF
is($rc, 0, 'nginx -t accepts a full client_guard_redis') or diag($out);

# --- Redis never reachable: the configuration decides, policy "local" --------

my $dead = $t->port(9);    # nothing listens there

$t->write_conf(CG::http(
    quotas => ['default quota=3/h'],
    redis => "127.0.0.1:$dead connect_timeout=50ms",
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'),
    workers => 2);
$t->start();

my @r = map { $t->get('/', { 'X-Client-Id' => 'nobody' }) } 1 .. 4;
is(join(' ', map { $_->{status} } @r), '200 200 200 429',
    'config quota applies while Redis was never reachable');
is($r[0]{headers}{'x-redis'}, 'DOWN_LOCAL', '$client_guard_redis DOWN_LOCAL');
$t->stop();

# --- quotas from Redis -------------------------------------------------------

$t = CG->new();
$t->redis_start();
$t->redis_cli('HSET', 'cg:quotas', 'team-a', 'quota=5/h',
              'default', 'quota=2/h', 'team-r', 'rate=2r/s burst=1');

$t->write_conf(CG::http(
    quotas => ['default quota=100/h', 'team-c quota=3/h'],
    # a generous timeout: exact counts, even on a loaded test machine
    redis => 'timeout=2s',
    location => <<'EOF'), workers => 2);
    add_header X-Redis $client_guard_redis always;
    add_header X-Status $client_guard_status always;
    empty_gif;
EOF
$t->start();

ok(CG::wait_until(sub {
    $t->get('/', { 'X-Client-Id' => 'probe' })->{headers}{'x-redis'} // ''
        eq 'LEASE' || 0 }, 5), 'lease path in use once Redis is up');

my $c = $t->statuses(8, '/', { 'X-Client-Id' => 'team-a' });
is($c->{200}, 5, 'Redis quota=5/h: 5 admitted');
is($c->{429}, 3, 'Redis quota=5/h: the rest rejected');

$c = $t->statuses(4, '/', { 'X-Client-Id' => 'team-c' });
is($c->{200}, 3, 'config quota for a client Redis does not name');

$c = $t->statuses(4, '/', { 'X-Client-Id' => 'team-d' });
is($c->{200}, 2, 'Redis "default" beats the config "default"');

$c = $t->statuses(6, '/', { 'X-Client-Id' => 'team-r' });
ok($c->{200} >= 2 && $c->{200} <= 3, "Redis rate=2r/s burst=1: $c->{200} of 6 at once");

my @keys = $t->redis_cli('--scan', '--pattern', 'cg:{team-a}*');
like("@keys", qr/^cg:\{team-a\}:w:3600000:\d+$/, 'window key under the client hash tag');
my $ttl = $t->redis_cli('PTTL', $keys[0]);
ok($ttl > 0 && $ttl <= 3700000, "window key expires on its own ($ttl ms)");

# --- a change by redis-cli during traffic ------------------------------------

my $stop = time + 3;
my $changed;
my ($first_ok, $n) = (undef, 0);
while (time < $stop) {
    my $s = $t->get('/', { 'X-Client-Id' => 'team-a' })->{status};
    $n++;
    if (!$changed && $n == 5) {
        $t->redis_cli('HSET', 'cg:quotas', 'team-a', 'quota=50/h');
        $t->redis_cli('INCR', 'cg:version');
        $changed = time;
    }
    if ($changed && $s == 200) {
        $first_ok = time - $changed;
        last;
    }
    sleep 0.02;
}
ok(defined $first_ok && $first_ok < 1.0,
   sprintf('raised quota effective in %.3f s (< 1 s, no reload)', $first_ok // 99));

$t->redis_cli('HSET', 'cg:quotas', 'team-a', 'mode=off');
$t->redis_cli('INCR', 'cg:version');
ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Client-Id' => 'team-a' })->{headers}{'x-status'} // '')
        eq 'BYPASSED' }, 1), 'mode=off from Redis: BYPASSED within 1 s');

# --- bad data: logged once, the last good definition stays ------------------

$t->redis_cli('HSET', 'cg:quotas', 'team-c', 'quota=abc/h', 'team-e',
              'quota=5/h bogus=1', 'team-f', 'quota=-5/h');
$t->redis_cli('INCR', 'cg:version');
sleep 1.5;    # several refreshes: every one sees the bad values

my $log = $t->error_log;
my @lines = $log =~ /(bad data in redis key "cg:quotas" field "team-c" value "quota=abc\/h".*)/g;
is(scalar @lines, 1, 'bad value logged once with key, field and value')
    or diag(join "\n", @lines);
like($log, qr/field "team-e" value "quota=5\/h bogus=1": unknown parameter/,
     'unknown field logged');
like($log, qr/field "team-f" value "quota=-5\/h"/, 'negative value logged');

$c = $t->statuses(4, '/', { 'X-Client-Id' => 'team-c' });
is($c->{200} // 0, 0, 'no definition ever came from Redis for team-c: the '
   . 'config quota (3/h, spent) still holds');

$t->redis_cli('HSET', 'cg:quotas', 'team-a', 'quota=3/h');
$t->redis_cli('INCR', 'cg:version');
sleep 0.8;
$t->redis_cli('HSET', 'cg:quotas', 'team-a', 'quota=99999999999999999/h');
$t->redis_cli('INCR', 'cg:version');
sleep 0.8;
like($t->error_log, qr/field "team-a" value "quota=99999999999999999\/h"/,
     'huge value logged');
$c = $t->statuses(3, '/', { 'X-Client-Id' => 'team-a' });
is($c->{429}, 3, 'last good definition (quota=3/h, spent) stays in force');

$t->redis_cli('DEL', 'cg:quotas');
$t->redis_cli('SET', 'cg:quotas', 'oops');
$t->redis_cli('INCR', 'cg:version');
sleep 0.8;
like($t->error_log, qr/redis key "cg:quotas" field "" value "WRONGTYPE.*not a hash/,
     'wrong type logged');
$c = $t->statuses(2, '/', { 'X-Client-Id' => 'team-a' });
is($c->{429}, 2, 'wrong type: the previous definitions stay');

$t->stop();

# --- pub/sub: a notice applies the change even with a slow version poll -----

$t = CG->new();
$t->redis_start();
$t->redis_cli('HSET', 'cg:quotas', 'team-p', 'quota=1/h');
$t->write_conf(CG::http(
    quotas => ['default quota=100/h'],
    # a generous timeout: exact counts, even on a loaded test machine
    redis => 'timeout=2s',
    http => 'client_guard_redis_lease 100ms refresh=20s;'));
$t->start();
ok(CG::wait_until(sub {
    $t->statuses(2, '/', { 'X-Client-Id' => 'team-p' })->{429} }, 3),
   'quota from Redis in force');
sleep 0.3;
$t->redis_cli('HSET', 'cg:quotas', 'team-p', 'quota=100/h');
$t->redis_cli('PUBLISH', 'cg:changes', 'team-p');
my $t0 = time;
ok(CG::wait_until(sub {
    $t->get('/', { 'X-Client-Id' => 'team-p' })->{status} == 200 }, 1, 0.02),
   sprintf('change applied by the pub/sub notice (%.3f s)', time - $t0));
$t->stop();

done_testing();
