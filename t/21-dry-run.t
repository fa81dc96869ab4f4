#!/usr/bin/perl
# Dry run, globally (client_guard_dry_run) and per client (mode=dry_run):
# counted and logged, nothing rejected.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['default rate=1r/m burst=1',
               'team-shadow rate=1r/m burst=1 mode=dry_run'],
    server => 'add_header X-Guard $client_guard_status always;',
    locations => <<'EOF'), access_log => 1);
    location /shadow/ {
        client_guard_dry_run on;
        empty_gif;
    }
EOF

$t->start();

sub run {
    my ($path, $client, $n) = @_;
    return join ' ', map {
        my $r = $t->get($path, { 'X-Client-Id' => $client });
        "$r->{status}:" . ($r->{headers}{'x-guard'} // '-')
    } 1 .. $n;
}

is(run('/', 'team-shadow', 3),
   '200:PASSED 200:PASSED 200:REJECTED_DRY_RUN', 'per-client dry run');
like($t->error_log,
     qr/limiting client "team-shadow" by rate=1r\/m burst=1 .*, dry run/,
     'dry-run rejection logged');

is(run('/shadow/', 'team-a', 3),
   '200:PASSED 200:PASSED 200:REJECTED_DRY_RUN', 'global dry run');

# a dry-run rejection does not consume: once dry run is off, the client
# still has exactly what the real limiter would have left it

is(run('/', 'team-a', 1), '429:REJECTED', 'enforced after the dry run');

is(run('/', 'team-b', 3), '200:PASSED 200:PASSED 429:REJECTED',
   'other clients enforced');

my @log = grep { /REJECTED_DRY_RUN/ } $t->access_log;
is(scalar @log, 2, 'dry-run rejections in the access log');

$t->stop();
done_testing();
