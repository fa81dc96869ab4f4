#!/usr/bin/perl
# error.log stays bounded under abuse (issue 13): rejections are logged as
# one line per client and second with their count, not one per request;
# bad quota data in Redis is logged once per change however many entries
# are bad; the status lists up to 64 of them, as docs/redis.md says; a
# version key of the wrong type is said.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use CG;

my $t = CG->new();
$t->redis_start();

my @bad = map { ("bad-$_", "rate=x$_") } 1 .. 100;
$t->redis_cli('HSET', 'cg:quotas', 'team-ok', 'quota=5/h', @bad);
$t->redis_cli('SET', 'cg:version', 1);

$t->write_conf(CG::http(
    quotas => ['default quota=1000/h', 'team-x quota=2/h'],
    redis => 'timeout=2s',
    status => 1,
    locations => 'location /anon/ {
                      client_guard_fallback off;
                      empty_gif;
                  }'),
    workers => 2);
$t->start();
$t->wait_for_link();

# rejections: 300 over about two seconds

my $http = HTTP::Tiny->new(keep_alive => 1);
my $base = 'http://127.0.0.1:' . $t->port(0);
my ($rejected, $anon) = (0, 0);
my $start = time;

for my $i (1 .. 300) {
    $rejected++ if $http->get("$base/", { headers =>
        { 'X-Client-Id' => 'team-x' } })->{status} == 429;
    $anon++ if $http->get("$base/anon/")->{status} == 403;
    sleep 0.005;
}

my $took = time - $start;
cmp_ok($rejected, '>=', 290, "team-x rejected $rejected times");
is($anon, 300, 'unidentified requests rejected');

sleep 2.5;    # the last summary lines

my $log = $t->error_log;
my @full = $log =~ /limiting client "team-x" by quota=2\/h/g;
my @sum = $log =~ /limiting client "team-x": (\d+) more requests? rejected in the last second/g;
my $secs = int($took) + 2;

ok(@full >= 1 && @full <= 2, 'the first rejection logged with its request, '
   . 'once a worker (' . scalar(@full) . ')');
ok(@sum <= 2 * $secs, 'then one line a second a worker with the count ('
   . scalar(@sum) . " lines in ${secs} s)");
my $n = 0;
$n += $_ for @sum;
is($n + @full, $rejected, 'every rejection accounted for, none logged alone');

my @anon_full = $log =~ /rejecting unidentified request \(no rule matched/g;
my @anon_sum = $log =~ /rejecting unidentified requests "no rule matched": (\d+) more/g;
$n = 0;
$n += $_ for @anon_sum;
is($n + @anon_full, 300, 'unidentified rejections summarised too');
ok(@anon_full + @anon_sum <= 2 + 2 * $secs, 'in a few lines');

# bad data: 100 bad entries, the definitions read again and again

ok(CG::wait_until(sub {
    my @l = $t->error_log =~ /bad data in redis key "cg:quotas"/g;
    @l >= 32 }, 5), 'bad data logged');
for (1 .. 3) {
    $t->redis_cli('INCR', 'cg:version');
    sleep 0.8;
}
sleep 0.5;

$log = $t->error_log;
my @lines = $log =~ /bad data in redis key "cg:quotas"/g;
is(scalar @lines, 32, '32 bad values logged one by one, once');
my @more = $log =~ /client guard: (\d+) more bad values in redis/g;
is_deeply(\@more, [68], 'and one line for the 68 others, once');

my $j = decode_json($t->get('/status?format=json')->{content});
is(scalar @{ $j->{health}{redis}{quota_errors} }, 64,
   'the status lists 64 bad values (docs/redis.md)');

# one changed: that one is logged, nothing else again

$t->redis_cli('HSET', 'cg:quotas', 'bad-7', 'rate=changed');
$t->redis_cli('INCR', 'cg:version');
ok(CG::wait_until(sub {
    $t->error_log =~ /field "bad-7" value "rate=changed"/ }, 5),
   'a changed bad value is logged');
sleep 1;
@lines = $t->error_log =~ /bad data in redis key "cg:quotas"/g;
is(scalar @lines, 33, 'that one alone');

is($t->get('/', { 'X-Client-Id' => 'team-ok' })->{headers}{'ratelimit-policy'},
   '"quota_h";q=5;w=3600', 'the good definition next to them is in force');

# the version key of the wrong type

$t->redis_cli('DEL', 'cg:version');
$t->redis_cli('HSET', 'cg:version', 'a', 'b');
ok(CG::wait_until(sub {
    $t->error_log =~ /bad data in redis key "cg:version" field "" value "WRONGTYPE[^"]*": not a string/ }, 7),
   'a version key of the wrong type is logged');
sleep 1.5;
my @v = $t->error_log =~ /redis key "cg:version"/g;
is(scalar @v, 1, 'once');

$t->stop();
done_testing();
