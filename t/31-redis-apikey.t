#!/usr/bin/perl

# API keys from Redis: a hash of SHA-256(key) hex -> client name, used by
# client_guard_identify_api_key; an unknown key is no claim another rule
# may make good: the fallback (t/73-identity-trust.t for the rest).

use strict;
use warnings;

use lib 't/lib';
use CG;
use Digest::SHA qw(sha256_hex);
use Test::More;

my $t = CG->new();
$t->redis_start();

$t->redis_cli('HSET', 'cg:apikeys', sha256_hex('k-123'), 'Team-K',
              'not-a-hash', 'team-x');
$t->redis_cli('HSET', 'cg:quotas', 'team-k', 'quota=2/h');

$t->write_conf(CG::http(
    quotas => ['default quota=100/m'],
    # a generous timeout: exact counts, even on a loaded test machine
    redis => 'timeout=2s',
    identify => 'client_guard_identify_api_key $http_x_api_key;
                 client_guard_identify $http_x_client_id;',
    location => 'add_header X-Client $client_guard_client always; empty_gif;'),
    workers => 2);
$t->start();

ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Api-Key' => 'k-123' })->{headers}{'x-client'} // '')
        eq 'team-k' }, 5), 'API key identifies its client (name normalised)');

my $c = $t->statuses(3, '/', { 'X-Api-Key' => 'k-123' });
is_deeply($c, { 200 => 1, 429 => 2 },
          'the key\'s client has its Redis quota (2/h, one spent above)');

my $r = $t->get('/', { 'X-Api-Key' => 'wrong', 'X-Client-Id' => 'other' });
is($r->{headers}{'x-client'}, 'unknown',
   'unknown key: no later rule identifies the request, the fallback does');

$r = $t->get('/', { 'X-Api-Key' => 'wrong' });
is($r->{headers}{'x-client'}, 'unknown', 'unknown key, no other rule: fallback');

like($t->error_log, qr/redis key "cg:apikeys" field "not-a-hash" value "team-x": not a lowercase hex SHA-256/,
     'bad key entry logged');

$t->redis_cli('HDEL', 'cg:apikeys', sha256_hex('k-123'));
$t->redis_cli('INCR', 'cg:version');
ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Api-Key' => 'k-123' })->{headers}{'x-client'} // '')
        eq 'unknown' }, 1), 'a removed key stops working within 1 s');

unlike(join('', $t->redis_cli('HKEYS', 'cg:apikeys')), qr/k-123/,
       'no key in clear in Redis');

$t->stop();
done_testing();
