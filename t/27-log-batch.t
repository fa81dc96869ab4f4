#!/usr/bin/perl
# A worker counts its finished requests in batches (cg_status_log.c): every
# answer is in the figures of the worker that answers a status request at
# once, in every worker's within 50 ms, and none is lost when the workers
# exit on a reload.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my $t = CG->new();

$t->write_conf(CG::http(quotas => ['default rate=10000r/s burst=10000'],
                        status => 'zone=z'), workers => 2);

$t->start();

sub answered {
    my ($name) = @_;
    my $r = $t->get('/status?format=json&client=' . $name);
    return -1 unless $r->{status} == 200;
    my $j = decode_json($r->{content});
    my ($c) = grep { $_->{name} eq $name } @{ $j->{clients} };
    return -1 unless $c;
    return $c->{responses_total} // -1;
}

# every request on a connection of its own: both workers serve some
$t->get('/', { 'X-Client-Id' => 'batch-a' }) for 1 .. 40;

# the answering worker counts its own batch before it answers
my $r = $t->get('/status?format=json&client=batch-a');
is($r->{status}, 200, 'status');

select(undef, undef, undef, 0.3);

my @seen = map { answered('batch-a') } 1 .. 6;
is_deeply(\@seen, [ (40) x 6 ],
          'after 50 ms every worker has counted its answers (6 status '
          . 'requests, either worker)');

# requests in a batch when the workers exit on a reload: counted then

$t->get('/', { 'X-Client-Id' => 'batch-b' }) for 1 .. 30;
$t->reload() or BAIL_OUT('reload');

is(answered('batch-b'), 30, 'a reload right after: every answer counted');

my @all = map { answered('batch-a') } 1 .. 4;
is_deeply(\@all, [ (40) x 4 ], 'and the earlier ones kept');

$t->stop();
done_testing();
