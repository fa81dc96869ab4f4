#!/usr/bin/perl

# bin/client-guard-quota: set / show / delete / validate quotas, add and
# remove API keys (by the key or by its hash); nginx picks the changes up
# without a reload. The quota in force (a node's word: configuration quotas
# too) and its use in words, from Redis or from the status endpoint, and
# the same in JSON.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use JSON::PP;

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

($rc, $out) = run('show');
is($out, "team-a rate=100r/s burst=20 quota=3/h\n", 'show: every stored quota');
($rc, $out) = run('show', 'team-a');
is($out, "team-a rate=100r/s burst=20 quota=3/h (redis)\n",
   'show CLIENT: Redis\'s own quota for it, in force everywhere');
($rc, $out) = run('show', 'team-c');
like($out, qr/^team-c: no quota in Redis.*configuration's applies/,
     'show CLIENT: without a node, says the configuration may have one');

$t->redis_cli('HSET', 'cg:quotas', 'team-x', 'quota=-1/h');
($rc, $out) = run('validate');
is($rc, 1, 'validate: finds the bad value');
like($out, qr/cg:quotas team-x "quota=-1\/h": invalid quota/, 'validate: names it');
($rc, $out) = run('delete', 'team-x');
is($rc, 0, 'delete');
($rc, $out) = run('validate');
is($rc, 0, 'validate: clean') or diag($out);

# a GCRA arrival time in Redis, read as the use of the burst: 30 s ahead
# at 10r/m is 5 of the 10 units (burst 9 + 1)
run('set', 'team-e', 'rate=10r/m', 'burst=9');
my ($sec, $usec) = $t->redis_cli('TIME');
$t->redis_cli('SET', 'cg:{team-e}:r:60000', ($sec * 1e6 + $usec) + 30e6,
              'PX', 40000);
($rc, $out) = run('usage', 'team-e');
like($out, qr/^  rate=10r\/m burst=9: used 5 of 10, 5 remaining, full again in 2\d\.\d s$/m,
     'usage: a rate\'s arrival time as used, remaining, full again in')
    or diag($out);
run('delete', 'team-e');

$t->write_conf(CG::http(
    quotas => ['default quota=100/h', 'team-c rate=10r/s burst=4'],
    # a generous timeout: exact counts, even on a loaded test machine
    redis => 'timeout=2s',
    identify => 'client_guard_identify_api_key $http_x_api_key;
                 client_guard_identify $http_x_client_id;',
    location => 'add_header X-Client $client_guard_client always; empty_gif;',
    status => 1));
$t->start();
my $status = 'http://127.0.0.1:' . $t->port . '/status';
my $node = 'node-' . $t->port;

# the 3 of quota=3/h counted in one hour's window
CG::window_clear(3600, 20);
($rc, my $key) = run('key-add', 'team-a');
chomp $key;
is($rc, 0, 'key-add: ok');
like($key, qr/^[0-9a-f]{48}$/, 'key-add: prints a new random key');
ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Api-Key' => $key })->{headers}{'x-client'} // '')
        eq 'team-a' }, 1), 'nginx identifies the new key within 1 s');
is_deeply($t->statuses(3, '/', { 'X-Api-Key' => $key }), { 200 => 2, 429 => 1 },
          'and applies its client\'s quota (3/h)');

# usage from Redis: the limits of the client's quota, in words
($rc, $out) = run('usage', 'team-a');
is($rc, 0, 'usage: ok') or diag($out);
like($out, qr/^team-a: rate=100r\/s burst=20 quota=3\/h \(redis\), as Redis counts/,
     'usage: the quota and where it comes from');
# (the hour's window is fixed, on Redis's clock: near its end the reset is
# in seconds)
my $resets = qr/resets in \d+(\.\d)? (s|min|h)/;
like($out, qr/^  quota=3\/h: used 3 of 3, 0 remaining, $resets/m,
     'usage: the window in words (used, remaining, resets in)');
like($out, qr/^  rate=100r\/s burst=20: used \d+ of 21, \d+ remaining, full/m,
     'usage: the rate in words, not a GCRA timestamp');
unlike($out, qr/\d{13}/, 'usage: no raw microseconds');
($rc, $out) = run('--json', 'usage', 'team-a');
my $u = eval { decode_json($out) } || {};
is($u->{from}, 'redis', 'usage --json: from Redis');
my ($w) = grep { $_->{type} eq 'window' } @{$u->{limits} || []};
is_deeply([ @$w{qw(used remaining capacity)} ], [3, 0, 3],
          'usage --json: the window\'s used, remaining, capacity');
ok($w->{reset_ms} > 0 && $w->{reset_ms} <= 3_600_000,
   'usage --json: reset_ms within the hour') or diag($out);

# the quota in force as a node applies it: configuration quotas too
is($t->statuses(3, '/', { 'X-Client-Id' => 'team-c' })->{200}, 3,
   'team-c sends 3 requests');
($rc, $out) = run('--status', $status, 'show', 'team-c');
is($out, "team-c rate=10r/s burst=4 (configuration on node $node)\n",
   'show --status: the configuration\'s quota, from the node');
($rc, $out) = run('--status', $status, 'show', 'team-a');
is($out, "team-a rate=100r/s burst=20 quota=3/h (redis on node $node)\n",
   'show --status: Redis\'s, from the node');
($rc, $out) = run('--status', $status, '--json', 'show', 'team-c');
my $s = eval { decode_json($out) } || {};
is_deeply([ @$s{qw(client definition source node)} ],
          ['team-c', 'rate=10r/s burst=4', 'config', $node],
          'show --status --json') or diag($out);
($rc, $out) = run('--status', $status, 'usage', 'team-c');
like($out, qr/^team-c: rate=10r\/s burst=4 \(configuration\), as node \Q$node\E counts it\n  rate=10r\/s burst=4: used [0-3] of 5, [2-5] remaining, full/,
     'usage --status: a configuration quota\'s use, in words') or diag($out);
($rc, $out) = run('--status', $status, '--json', 'usage', 'team-c');
$u = eval { decode_json($out) } || {};
my $l = $u->{limits}[0] || {};
is($l->{used} + $l->{remaining}, 5, 'usage --status --json: used + remaining')
    or diag($out);
($rc, $out) = run('--status', $status, 'show', 'team-z');
like($out, qr/^team-z: no quota in Redis.*\(the node has not seen team-z yet\)/,
     'show --status: a client the node has not seen');

# keys by hash, as "keys" lists them
($rc, my $key2) = run('key-add', 'team-b');
chomp $key2;
($rc, $out) = run('keys');
my %hash = reverse map { split ' ' } split /\n/, $out;
is($hash{'team-b'}, sha256_hex_of($key2), 'keys: the hash of each key');
($rc, $out) = run('--json', 'keys');
is(scalar @{(eval { decode_json($out) } || {})->{keys} || []}, 2,
   'keys --json');
($rc, $out) = run('key-remove', $hash{'team-b'});
is($rc, 0, 'key-remove HASH: as keys lists it') or diag($out);
like($out, qr/^removed [0-9a-f]{64} \(team-b\)/, 'key-remove: says what');
($rc, $out) = run('key-remove', '--hash', $hash{'team-b'});
is($rc, 1, 'key-remove --hash: a hash no longer there is an error');

($rc, $out) = run('key-remove', $key);
is($rc, 0, 'key-remove KEY: by the key itself');
ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Api-Key' => $key })->{headers}{'x-client'} // '')
        eq 'unknown' }, 1), 'a removed key stops working within 1 s');
($rc, $out) = run('keys');
is($out, '', 'no key left');

$t->stop();
done_testing();

sub sha256_hex_of {
    require Digest::SHA;
    return Digest::SHA::sha256_hex($_[0]);
}
