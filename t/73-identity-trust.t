#!/usr/bin/perl
# Identity trust (issue 13, docs/security.md): an API key that is present
# but unknown is not identified by a later rule (the fallback, or the
# status of unknown=); a header is taken as a claim only from addresses
# trusted with nginx's geo and a regex rule.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(sha256_hex);
use CG;

my $t = CG->new();
$t->redis_start();
$t->redis_cli('HSET', 'cg:apikeys', sha256_hex('k-pay-1'), 'team-pay');

$t->write_conf(CG::http(
    quotas => ['default quota=1000/h'],
    redis => 'timeout=2s',
    status => 1,
    http => 'geo $cg_trusted_peer {
                 default       0;
                 127.0.0.2/32  1;
             }',
    identify => 'client_guard_identify_api_key $http_x_api_key;
                 client_guard_identify $cg_trusted_peer:$http_x_client_id
                                       ~^1:(.+)$;',
    location => 'add_header X-Client $client_guard_client always;
                 empty_gif;',
    locations => 'location /strict/ {
                      client_guard_identify_api_key $http_x_api_key
                                                    unknown=401;
                      client_guard_identify $http_x_client_id;
                      add_header X-Client $client_guard_client always;
                      empty_gif;
                  }'),
    workers => 1);
$t->start();
$t->wait_for_link();

my $from = sub {
    my ($addr, $path, $h) = @_;
    my $http = HTTP::Tiny->new(local_address => $addr);
    my $r = $http->get('http://127.0.0.1:' . $t->port(0) . $path,
                       { headers => $h });
    return $r;
};

ok(CG::wait_until(sub {
    ($from->('127.0.0.1', '/', { 'X-Api-Key' => 'k-pay-1' })->{headers}
        {'x-client'} // '') eq 'team-pay' }, 5), 'a known key is proof');

# a header: a claim, taken from trusted addresses only

is($from->('127.0.0.2', '/', { 'X-Client-Id' => 'team-ops' })->{headers}
   {'x-client'}, 'team-ops', 'a header from a trusted address identifies');
is($from->('127.0.0.1', '/', { 'X-Client-Id' => 'team-ops' })->{headers}
   {'x-client'}, 'unknown', 'the same header from elsewhere: the fallback');

# an unknown key: no later rule makes its claim good

my $r = $from->('127.0.0.2', '/', { 'X-Api-Key' => 'bogus',
                                    'X-Client-Id' => 'team-pay' });
is($r->{status}, 200, 'unknown key, default: served');
is($r->{headers}{'x-client'}, 'unknown',
   'unknown key: the fallback, not the header\'s team-pay');

$r = $from->('127.0.0.1', '/strict/', { 'X-Api-Key' => 'bogus',
                                        'X-Client-Id' => 'team-pay' });
is($r->{status}, 401, 'unknown=401: the status');

$r = $from->('127.0.0.1', '/strict/', { 'X-Client-Id' => 'team-pay' });
is($r->{headers}{'x-client'}, 'team-pay', 'no key at all: the next rule');

$r = $from->('127.0.0.1', '/strict/', { 'X-Api-Key' => 'k-pay-1' });
is($r->{headers}{'x-client'}, 'team-pay', 'a known key there too');

my $j = $t->get('/status?format=json')->{content};
like($j, qr/"unknown_api_key":2\b/, 'counted as unidentified: unknown key');

unlike($t->error_log, qr/bogus/, 'a key is never logged');

$t->stop();
done_testing();
