#!/usr/bin/perl
# The publication to Redis walks the zone in slices of 256 records, yielding
# to the event loop in between, and keeps only the busiest "clients" in a
# bounded heap.  With 700 clients (three slices), the top 40 published are
# exactly the 40 with the most requests (ties: by name), whichever slice
# they are in; with clients=1000 every one of the 700 is published with its
# own count: none is missed or seen twice across slices.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use CG;

plan skip_all => 'redis-server not installed'
    unless `command -v redis-server 2>/dev/null`;

my $t = CG->new();
$t->redis_start();

sub conf {
    my ($clients) = @_;
    return CG::http(zone => 'z:4m', redis => 1, status => 1, http =>
        "client_guard_status_publish interval=300ms clients=$clients;");
}

$t->write_conf(conf(40));
$t->start();

# 700 clients: c-0 .. c-699 with one request each, except 30 with 3 .. 32
# requests, and 20 with 2 requests each (of which the 10 first by name make
# the top 40), spread over the whole rbtree (ordered by CRC-32 of the name)

my %want;
my %count = map { ("c-$_" => 1) } 0 .. 699;
my @busy = map { $_ * 23 % 700 } 0 .. 49;
$count{"c-$busy[$_]"} = 3 + $_ for 0 .. 29;
$count{"c-$busy[$_]"} = 2 for 30 .. 49;

my $http = HTTP::Tiny->new(agent => 'cg-test', timeout => 10);
my $port = $t->port(0);
my $failed = 0;

for my $name (sort keys %count) {
    for (1 .. $count{$name}) {
        my $r = $http->get("http://127.0.0.1:$port/",
                           { headers => { 'X-Client-Id' => $name } });
        $failed++ unless $r->{status} == 200;
    }
}

is($failed, 0, 'traffic sent');

my @ranked = sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count;
my @top = @ranked[0 .. 39];

sub published {
    my ($key) = grep { !/stats-nodes/ } $t->redis_cli('KEYS', 'cg:stats:*');
    return {} unless $key;
    my %h = $t->redis_cli('HGETALL', $key);
    return \%h;
}

sub requests {
    my ($h) = @_;
    return { map { $_ => (split / /, $h->{$_})[0] } grep { $_ ne '_meta' }
             keys %$h };
}

my $h;
my $ok = CG::wait_until(sub {
    $h = published();
    return $h->{_meta} && (split / /, $h->{_meta})[1] == 700
        && keys %$h == 41;
}, 10);

ok($ok, 'published: _meta says 700 clients, 40 rows')
    or diag(explain [ $h->{_meta}, scalar keys %$h ]);

my $got = requests($h);
is_deeply([ sort keys %$got ], [ sort @top ], 'the top 40, ties by name')
    or diag(explain [ grep { !exists $got->{$_} } @top ]);
is_deeply($got, { map { $_ => $count{$_} } @top }, 'their request counts');

# every client, from every slice

$t->write_conf(conf(1000));
ok($t->reload(), 'reload with clients=1000');

$ok = CG::wait_until(sub {
    $h = published();
    return keys %$h == 701;
}, 10);

ok($ok, 'all 700 clients published') or diag(scalar keys %$h);
is_deeply(requests($h), \%count, 'each with its own count');
is((split / /, $h->{_meta})[1], 700, '_meta: 700 clients');

$t->stop();

done_testing();
