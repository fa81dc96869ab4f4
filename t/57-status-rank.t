#!/usr/bin/perl
# The rows shown are exactly the first "limit" of all clients in the sort's
# order, whatever the batch they were copied in: 1,000 clients (four
# batches of 256 records) with their own request counts, every sort, a few
# limits; each row shown carries its own client's figures (a report keeps
# only the rows it shows, with their copies, and reuses the memory of
# those pushed out).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use CG;

my $t = CG->new();
$t->write_conf(CG::http(zone => 'z:4m', status => 1));
$t->start();

my $port = $t->port(0);
my $http = HTTP::Tiny->new(keep_alive => 1);

# c0000 .. c0999: 1 to 13 requests each, in an order of their own
my %sent;
for my $i (0 .. 999) {
    my $name = sprintf 'c%04d', ($i * 379) % 1000;
    my $n = 1 + ($i * 7) % 13;
    $sent{$name} = $n;
    $http->get("http://127.0.0.1:$port/", { headers => { 'X-Client-Id' => $name } })
        for 1 .. $n;
}

sub status {
    my $r = $http->get("http://127.0.0.1:$port/status?$_[0]");
    return $r->{status} == 200 ? decode_json($r->{content}) : undef;
}

my $all = status('limit=10000&sort=name');
is($all->{clients_shown}, 1000, 'all 1000 clients');
is_deeply({ map { $_->{name} => $_->{requests_total} } @{ $all->{clients} } },
          \%sent, 'each counted');

# requests: the highest first, ties by name
my @want = sort { $sent{$b} <=> $sent{$a} || $a cmp $b } keys %sent;

for my $limit (1, 7, 100, 255, 256, 257, 999) {
    my $j = status("limit=$limit&sort=requests");
    my @got = map { $_->{name} } @{ $j->{clients} };
    is_deeply(\@got, [@want[0 .. $limit - 1]],
              "limit=$limit: the first $limit by requests");
    my @wrong = grep { $_->{requests_total} != $sent{$_->{name}} }
                @{ $j->{clients} };
    is(scalar(@wrong), 0, "limit=$limit: each row its own figures");
    is($j->{clients_total}, 1000, "limit=$limit: of 1000");
}

# by name, ascending, across the batches
my @names = sort keys %sent;
for my $limit (5, 300) {
    my $j = status("limit=$limit&sort=name");
    is_deeply([map { $_->{name} } @{ $j->{clients} }],
              [@names[0 .. $limit - 1]], "sort=name limit=$limit");
}

$t->stop();
done_testing();
