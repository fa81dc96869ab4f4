#!/usr/bin/perl

# A Redis Cluster that announces host names (Redis 7:
# cluster-announce-hostname and cluster-preferred-endpoint-type hostname,
# as clusters on Kubernetes run): CLUSTER SLOTS names each master by its
# host name with its "ip" beside it, and a MOVED names the master by its
# host name only.  The host names here resolve nowhere (.invalid): the
# module takes each master's "ip" from the map, and knows a MOVED's host
# name from the map, so every client is decided by Redis, on all 3
# masters, and a slot moved costs no request the failure policy.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Compress::Zlib ();
use JSON::PP ();
use Time::HiRes qw(sleep);

my $redis = CG->new();
my @ports = $redis->redis_cluster_start(3, replicas => 0);

sub on { my $p = shift; return $redis->redis_cli({ port => $p }, @_) }

for my $p (@ports) {
    on($p, 'CONFIG', 'SET', 'cluster-announce-hostname',
       "redis-$p.cg.invalid");
}
on($_, 'CONFIG', 'SET', 'cluster-preferred-endpoint-type', 'hostname')
    for @ports;

ok(CG::wait_until(sub {
    for my $p (@ports) {
        my $slots = join ' ', on($p, 'CLUSTER', 'SLOTS');
        my $names = () = $slots =~ /redis-\d+\.cg\.invalid/g;
        return 0 unless $names == 3;
    }
    return 1;
}, 10), 'every master names the 3 masters by host name in CLUSTER SLOTS');

# the master of a key: the one that does not answer MOVED

sub master_of {
    my ($key) = @_;
    for my $p (@ports) {
        return $p if on($p, 'GET', $key) !~ /^MOVED/;
    }
    return undef;
}

my $qm = master_of('cg:quotas');
on($qm, 'HSET', 'cg:quotas', 'default', 'quota=20/h');
on($qm, 'INCR', 'cg:version');

my ($t) = $redis->nodes(1, CG::http(
    quotas => ['default quota=1000/h'],
    redis => "127.0.0.1:$ports[0] cluster",
    location => 'add_header X-Redis $client_guard_redis always; '
        . 'empty_gif;'));

ok($t->wait_for_log(qr/redis cluster: \d+ slot ranges on 3 masters/, 5),
   'the slot map: 3 masters, by their "ip"');
ok(CG::wait_until(sub {
    ($t->get('/', { 'X-Client-Id' => 'probe' })->{headers}{'x-redis'} // '')
        eq 'LEASE' }, 5), 'the node uses the Cluster');

# the definitions read (cg:quotas on whichever master): 20/h, not 1000/h
my $n = 0;
ok(CG::wait_until(sub {
    $n++;
    $t->get('/', { 'X-Client-Id' => 'def-probe' })->{status} == 429 }, 5,
    0.01), "Redis's default quota=20/h in force ($n requests)");

# 40 clients over the 16 buckets (docs/redis.md: hash tag "<bucket>.<n>",
# bucket CRC32(name) % 16), so over the 3 masters; 25 requests each at
# "default quota=20/h" from Redis

my (%admitted, %down);
my @clients = map { "team-$_" } 1 .. 40;
for my $c (@clients) {
    for (1 .. 25) {
        my $r = $t->get('/', { 'X-Client-Id' => $c });
        $admitted{$c}++ if $r->{status} == 200;
        $down{$c}++ if ($r->{headers}{'x-redis'} // '') =~ /^DOWN/;
    }
}
my @wrong = grep { ($admitted{$_} // 0) != 20 } @clients;
is(scalar(@wrong), 0, 'every client held at its quota, 20 of 25')
    or diag(join ' ', map { "$_=" . ($admitted{$_} // 0) } @wrong);
is(scalar(keys %down), 0, 'no request by the failure policy');

my %keys_on;
for my $p (@ports) {
    $keys_on{$p} = () = grep { /:w:/ }
        on($p, '--scan', '--pattern', 'cg:{*}team-*');
}
is(scalar(grep { $keys_on{$_} } @ports), 3,
   'the clients\' counts on all 3 masters')
    or diag(explain \%keys_on);

# bin/client-guard-quota usage, pointed at any node: the Cluster's key
# names (the bucket's tag), read on the master of their slot
my @use;
for my $c (@clients[0 .. 5]) {
    my $out = `CG_REDIS="-p $ports[0]" $CG::ROOT/bin/client-guard-quota --json usage $c 2>&1`;
    my $doc = eval { JSON::PP::decode_json($out) } || {};
    push @use, ($doc->{limits}[0]{used} // 'none') . ' '
        . scalar(@{ $doc->{other_counters} || [] });
}
is("@use", join(' ', ('20 0') x 6), 'client-guard-quota usage: used 20 '
   . 'of 20 for each, no counter unexplained');

# a slot moved: the first lease of a client of its bucket goes to the old
# master (the node's map is up to 5 s old), which answers "MOVED <slot>
# redis-PORT.cg.invalid:PORT"; the node knows that name from its map.  A
# map asked again between the move and the request sees no MOVED: tried
# again with another bucket.

sub errorstat_moved {
    my ($p) = @_;
    my $info = join "\n", on($p, 'INFO', 'errorstats');
    return $info =~ /errorstat_MOVED:count=(\d+)/ ? $1 : 0;
}

sub client_of_bucket {
    my ($bucket, $avoid) = @_;
    for my $i (1 .. 10000) {
        my $name = "moved-$i";
        next if $avoid->{$name};
        return $name if Compress::Zlib::crc32($name) % 16 == $bucket;
    }
    die 'no name';
}

my ($moved, %used, $q, %qs);
for my $try (1 .. 3) {
    my $bucket = $try * 5 % 16;
    $q = client_of_bucket($bucket, \%used);
    $used{$q} = 1;
    on($qm, 'HSET', 'cg:quotas', $q, 'quota=5/h');
    on($qm, 'INCR', 'cg:version');
    on($qm, 'PUBLISH', 'cg:changes', $q);
    sleep(0.3);

    # the bucket's slot (a key of a client of the bucket shows it)
    my ($key) = grep { Compress::Zlib::crc32(($_ =~ /\}(team-\d+):/)[0])
                       % 16 == $bucket }
        map { on($_, '--scan', '--pattern', 'cg:{*}team-*') } @ports;
    next unless $key;
    my $slot = on($ports[0], 'CLUSTER', 'KEYSLOT', $key);
    my ($src) = grep { on($_, 'CLUSTER', 'COUNTKEYSINSLOT', $slot) > 0 }
        @ports;
    my ($dst) = grep { $_ != $src } @ports;
    my $src_id = on($src, 'CLUSTER', 'MYID');
    my $dst_id = on($dst, 'CLUSTER', 'MYID');
    my $before = errorstat_moved($src);

    on($dst, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $src_id);
    on($src, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $dst_id);
    my @keys = on($src, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    on($src, 'MIGRATE', '127.0.0.1', $dst, '', 0, 5000, 'KEYS', @keys)
        if @keys;
    on($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $dst_id) for @ports;

    %qs = ();
    for (1 .. 8) {
        my $r = $t->get('/', { 'X-Client-Id' => $q });
        $qs{$r->{status}}++;
        $qs{ $r->{headers}{'x-redis'} // '-' }++;
    }
    $moved = errorstat_moved($src) - $before;
    last if $moved;
    note("try $try: no MOVED (the map was asked again first)");
}

ok($moved, 'the old master answered MOVED by host name');
ok(($moved // 0) <= 2, "followed at once: $moved MOVED (not one per retry)");
is($qs{200} // 0, 5, "$q (quota=5/h, its slot moved): 5 admitted");
ok(!grep({ /^DOWN/ } keys %qs), 'none by the failure policy')
    or diag(explain \%qs);
unlike($t->error_log, qr/is not an IP address/,
       'no master taken for a host name to resolve');

$t->stop();

done_testing();
