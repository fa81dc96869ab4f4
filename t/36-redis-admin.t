#!/usr/bin/perl

# bin/client-guard-quota: set / show / delete / validate quotas, add and
# remove API keys; nginx picks the changes up without a reload.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;

my $t = CG->new();
my $rp = $t->redis_start();
my $bin = "$CG::ROOT/bin/client-guard-quota";

sub run {
    my $out = `CG_REDIS="-p $rp" $bin @_ 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = run('set', 'Team-A', 'rate=100r/s', 'burst=20', 'quota=3/h');
is($rc, 0, 'set: ok') or diag($out);
is($t->redis_cli('HGET', 'cg:quotas', 'team-a'), 'rate=100r/s burst=20 quota=3/h',
   'set: stored under the normalised name');
is($t->redis_cli('GET', 'cg:version'), 1, 'set: version bumped');

($rc, $out) = run('set', 'team-b', 'quota=abc/h');
is($rc, 1, 'set: an invalid value is refused');
like($out, qr/invalid quota "abc\/h"/, 'set: with the reason');
($rc, $out) = run('set', 'team-b', 'burst=5');
like($out, qr/"burst" must follow a "rate"/, 'set: burst without rate refused');

($rc, $out) = run('show', 'team-a');
is($out, "team-a rate=100r/s burst=20 quota=3/h\n", 'show');

$t->redis_cli('HSET', 'cg:quotas', 'team-x', 'quota=-1/h');
($rc, $out) = run('validate');
is($rc, 1, 'validate: finds the bad value');
like($out, qr/cg:quotas team-x "quota=-1\/h": invalid quota/, 'validate: names it');
($rc, $out) = run('delete', 'team-x');
is($rc, 0, 'delete');
($rc, $out) = run('validate');
is($rc, 0, 'validate: clean') or diag($out);

$t->write_conf(CG::http(
    quotas => ['default quota=100/h'],
    # a generous timeout: exact counts, even on a loaded test machine
    redis => 'timeout=2s',
    identify => 'client_guard_identify_api_key $http_x_api_key;',
    location => 'add_header X-Client $client_guard_client always; empty_gif;'));
$t->start();

($rc, my $key) = run('key-add', 'team-a');
chomp $key;
is($rc, 0, 'key-add: ok');
like($key, qr/^[0-9a-f]{48}$/, 'key-add: prints a new random key');
ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Api-Key' => $key })->{headers}{'x-client'} // '')
        eq 'team-a' }, 1), 'nginx identifies the new key within 1 s');
is_deeply($t->statuses(3, '/', { 'X-Api-Key' => $key }), { 200 => 2, 429 => 1 },
          'and applies its client\'s quota (3/h)');

($rc, $out) = run('usage', 'team-a');
like($out, qr/^cg:\{team-a\}:w:3600000:\d+ 3 /m, 'usage: the window counter');

($rc, $out) = run('key-remove', $key);
is($rc, 0, 'key-remove');
ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Api-Key' => $key })->{headers}{'x-client'} // '')
        eq 'unknown' }, 1), 'a removed key stops working within 1 s');

$t->stop();
done_testing();
