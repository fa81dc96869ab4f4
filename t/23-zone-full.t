#!/usr/bin/perl
# A full zone evicts the least recently seen client and keeps serving:
# thousands of distinct names through a zone that holds a few dozen, and
# a client cap (clients=N).  Several workers share the same counters.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

$t->write_conf(<<'EOF', workers => 2);
    client_guard_zone zone=small:64k;
    client_guard_zone zone=capped:1m clients=10;
    client_guard_zone zone=shared:1m;

    client_guard_quota default rate=1r/m burst=0;
    client_guard_quota team-many rate=1r/m burst=49;

    log_format pids '$pid $client_guard_client $status';

    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        client_guard_identify $http_x_client_id;
        add_header X-Guard $client_guard_status always;

        location /small/ {
            client_guard zone=small;
            empty_gif;
        }

        location /capped/ {
            client_guard zone=capped;
            empty_gif;
        }

        location /shared/ {
            client_guard zone=shared;
            access_log %%TESTDIR%%/pids.log pids;
            empty_gif;
        }
    }
EOF

$t->start();

# 3000 distinct names, one keep-alive connection: all served

my $http = HTTP::Tiny->new(keep_alive => 1);
my $port = $t->port(0);
my %st;

for my $i (1 .. 3000) {
    my $r = $http->get("http://127.0.0.1:$port/small/",
                       { headers => { 'X-Client-Id' => "flood-$i" } });
    $st{$r->{status}}++;
}

is_deeply(\%st, { 200 => 3000 }, 'a flood of new names is served');

# the first names were evicted: they start afresh

is($t->get('/small/', { 'X-Client-Id' => 'flood-1' })->{status}, 200,
   'evicted client starts again');

# the most recent name is still tracked and limited

is($t->get('/small/', { 'X-Client-Id' => 'flood-3000' })->{status}, 429,
   'recent client still tracked');

# every one of the most recent names is found again after all that churn
# (hash index and rbtree agree): none starts afresh

my $found = grep {
    $http->get("http://127.0.0.1:$port/small/",
               { headers => { 'X-Client-Id' => "flood-$_" } })->{status}
        == 429
} 2981 .. 2999;
is($found, 19, 'the most recent clients are all found');

# clients=10: the 11th client evicts the least recently seen

for my $i (1 .. 10) {
    $t->get('/capped/', { 'X-Client-Id' => "cap-$i" });
}
is($t->get('/capped/', { 'X-Client-Id' => 'cap-2' })->{status}, 429,
   'tracked while under the cap');
$t->get('/capped/', { 'X-Client-Id' => 'cap-11' });
is($t->get('/capped/', { 'X-Client-Id' => 'cap-1' })->{status}, 200,
   'least recently seen evicted at the cap');
is($t->get('/capped/', { 'X-Client-Id' => 'cap-2' })->{status}, 429,
   'recently seen client kept');

# two workers, many connections: the burst is shared exactly

my $passed = 0;
my %pids;
for (1 .. 80) {
    my $r = $t->get('/shared/', { 'X-Client-Id' => 'team-many' });
    $passed++ if $r->{status} == 200;
}
is($passed, 50, 'two workers share one counter: exactly burst + 1 pass');

open(my $fh, '<', $t->dir . '/pids.log') or die $!;
my %by_pid;
while (<$fh>) { $by_pid{$1}++ if /^(\d+) team-many/ }
is(scalar keys %by_pid, 2, 'both workers served the client')
    or diag explain \%by_pid;

$t->stop();
done_testing();
