#!/usr/bin/perl
# An unidentified request that waits for a lease and resumes is counted once
# as unidentified, and once as a request of the fallback client.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my $t = CG->new();
$t->redis_start();

$t->write_conf(CG::http(
    # the fallback client has a quota of its own: its first request waits
    # for a lease (a client without one is counted on the node at first)
    quotas => ['default rate=1000r/s burst=1000',
               'unknown rate=1000r/s burst=1000'],
    redis => 1,
    status => 1,
    location => <<'EOF'));
    add_header X-Redis $client_guard_redis always;
    add_header X-Client $client_guard_client always;
    empty_gif;
EOF

$t->start();

ok(CG::wait_until(sub {
    my $j = decode_json($t->get('/status')->{content});
    return ($j->{health}{redis}{link_state} // '') eq 'ready';
}, 10), 'link ready');

# the first request of a client has no lease yet: it waits, then resumes

my $r = $t->get('/');
is($r->{headers}{'x-client'}, 'unknown', 'fallback client');
is($r->{headers}{'x-redis'}, 'WAITED', 'the first request waited for a lease');

my @more = map { $t->get('/') } 1 .. 4;
is(scalar(grep { $_->{status} == 200 } @more), 4, 'four more pass');

my $j = decode_json($t->get('/status?client=unknown')->{content});
is($j->{health}{unidentified_total}{no_rule}, 5,
   'five unidentified requests counted five times');

my ($c) = grep { $_->{name} eq "unknown" } @{ $j->{clients} };
is($c && $c->{requests_total}, 5, 'five requests of the fallback client')
    or diag explain $c;

$t->stop();
done_testing();
