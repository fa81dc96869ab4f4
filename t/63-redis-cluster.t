#!/usr/bin/perl

# A Redis Cluster (3 masters + 3 replicas): "cluster" in client_guard_redis
# with the seeds' addresses.  Quotas defined in Redis hold cluster-wide over
# 2 nginx nodes for clients whose keys live on different masters, a change
# made with redis-cli applies within a second, and a master killed under
# traffic costs only its slots' clients the failure policy (within the
# timeout, no 5xx), its replica being used within a second of promotion.
# "cluster" against a Redis that is no Cluster says so in the log.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use HTTP::Tiny;
use Compress::Zlib ();
use JSON::PP ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $redis = CG->new();
my @ports = $redis->redis_cluster_start(3, replicas => 1);
my $seed = $ports[0];

sub cli { $redis->redis_cli({ port => $seed, cluster => 1 }, @_) }

cli('HSET', 'cg:quotas', 'default', 'quota=1000000/h');
cli('INCR', 'cg:version');

my $seeds = join ' ', map { "127.0.0.1:$_" } @ports[0 .. 2];

my @nodes = $redis->nodes(2, CG::http(
    quotas => ['default quota=10/h'],
    redis => "$seeds cluster",
    http => 'client_guard_status_publish interval=300ms;', status => 1,
    location => 'add_header X-Redis $client_guard_redis always; '
        . 'empty_gif;'), workers => 2);

for my $t (@nodes) {
    ok($t->wait_for_log(qr/redis cluster: \d+ slot ranges on 3 masters/, 5),
       'the slot map: 3 masters');
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'probe' })->{headers}{'x-redis'} // '')
            eq 'LEASE' }, 5), 'node uses the Cluster');
}

# which master holds which bucket's keys (docs/redis.md: a client's keys
# carry the hash tag "<bucket>.<n>" of bucket CRC32(name) % 16): probes
# spread over the buckets, then SCAN on each master

my @probes = map { sprintf 'probe-%02d', $_ } 0 .. 63;

# a client without a quota of its own is counted on the node for its first
# "ahead" requests (8 by default), Redis hears of it after those
for my $p (@probes) {
    $nodes[0]->get('/', { 'X-Client-Id' => $p }) for 1 .. 12;
}

my $masters = $redis->redis_cluster_masters($seed);
my %bucket_home;
for my $m (keys %$masters) {
    for my $key ($redis->redis_cli({ port => $m }, '--scan', '--pattern',
                                   'cg:{*}probe-*')) {
        $bucket_home{$1} = $m if $key =~ /^cg:\{(\d+)\.\d+\}probe-\d\d:/;
    }
}

# fresh clients (no key in Redis yet), one on each master

my (%home, %by);
for my $name (map { sprintf 'team-%02d', $_ } 0 .. 99) {
    my $m = $bucket_home{Compress::Zlib::crc32($name) % 16} or next;
    next if $by{$m};
    $by{$m} = $name;
    $home{$name} = $m;
}
is(scalar(keys %by), 3, 'clients on the 3 masters')
    or diag(explain \%bucket_home);
my ($A, $B, $C) = map { $by{$_} } sort keys %by;
my $mA = $home{$A};
note("A=$A on $mA, B=$B on $home{$B}, C=$C on $home{$C}");

# the status part's keys, each on its master: the cluster view on node 1
# has node 0's figures

my $view;
ok(CG::wait_until(sub {
    my $r = $nodes[1]->get('/status?scope=cluster&limit=1000');
    return 0 unless $r->{status} == 200;
    $view = JSON::PP::decode_json($r->{content});
    my %seen = map { $_->{name} => $_->{requests_total} }
        @{ $view->{clients} };
    return $view->{nodes_reporting} == 2
        && 64 == grep { ($seen{$_} // 0) >= 1 } @probes;
}, 10), 'the cluster view: 2 nodes reporting, node 0\'s 64 probes')
    or diag(explain $view);

# a cluster-wide quota over 2 nodes, for clients on different masters

my $QUOTA = 40;
# A's, B's and C's counts, in one hour's window
CG::window_clear(3600, 30);
cli('HSET', 'cg:quotas', $A, "quota=$QUOTA/h", $B, "quota=$QUOTA/h");
cli('INCR', 'cg:version');
cli('PUBLISH', 'cg:changes', 'x');
sleep(0.3);

sub fan_out { return CG::fan_out(\@nodes, $_[0]) }

for my $client ($A, $B) {
    my $total = fan_out(sub {
        $_[0]->statuses(30, '/', { 'X-Client-Id' => $client });
    });
    my $ok = ($total->{200} // 0);
    ok($ok >= $QUOTA && $ok <= $QUOTA + 4,
       "$client (keys on $home{$client}), 2 nodes at 3x the quota: "
       . "$QUOTA admitted (+ at most 1 ahead a worker): $ok")
        or diag(explain $total);
    is(($total->{200} // 0) + ($total->{429} // 0), 120, 'the rest rejected');
}

# a change through redis-cli applies within a second

cli('HSET', 'cg:quotas', $C, 'quota=2/h');
cli('INCR', 'cg:version');
cli('PUBLISH', 'cg:changes', $C);
ok(CG::wait_until(sub {
    $_->get('/', { 'X-Client-Id' => $C }) for @nodes;
    $nodes[0]->get('/', { 'X-Client-Id' => $C })->{status} == 429
        && $nodes[1]->get('/', { 'X-Client-Id' => $C })->{status} == 429
}, 5), "$C held at 2/h");

my $t0 = time;
cli('HSET', 'cg:quotas', $C, 'quota=1000000/h');
cli('INCR', 'cg:version');
cli('PUBLISH', 'cg:changes', $C);
my $applied = CG::wait_until(sub {
    $nodes[0]->get('/', { 'X-Client-Id' => $C })->{status} == 200
        && $nodes[1]->get('/', { 'X-Client-Id' => $C })->{status} == 200
}, 5);
my $took = time - $t0;
ok($applied && $took < 1, sprintf('the change applied on both nodes in '
   . '%.0f ms', 1000 * $took));

# traffic: a process per node and client, each request logged as
# "time client status $client_guard_redis ms"

my ($log, $stop, @kids);
my $round = 0;

sub traffic_start {
    my @clients = @_;
    $round++;
    $log = $redis->dir . "/traffic$round";
    $stop = "$log.stop";
    @kids = ();
    for my $ti (0 .. $#nodes) {
        my $t = $nodes[$ti];
        for my $client (@clients) {
            push @kids, CG::fork_child(sub {
                my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 5);
                my $url = 'http://127.0.0.1:' . $t->port(0) . '/';
                open(my $fh, '>', "$log.$ti.$client") or die;
                while (!-e $stop) {
                    my $s = time;
                    my $r = $http->get($url,
                        { headers => { 'X-Client-Id' => $client } });
                    printf $fh "%.4f %s %d %s %.1f\n", $s, $client,
                        $r->{status}, $r->{headers}{'x-redis'} // '-',
                        1000 * (time - $s);
                    sleep(0.002);
                }
                close $fh;
            });
        }
    }
}

sub traffic_stop {
    open(my $fh, '>', $stop);
    close $fh;
    CG::wait_child($_) for @kids;
    my @rows;
    for my $file (glob("$log.*")) {
        open(my $in, '<', $file) or die;
        push @rows, [ split ] while <$in>;
    }
    return sort { $a->[0] <=> $b->[0] } @rows;
}

cli('HSET', 'cg:quotas', $A, 'quota=1000000/h', $B, 'quota=1000000/h');
cli('INCR', 'cg:version');
cli('PUBLISH', 'cg:changes', 'x');
sleep(0.3);

# a slot moved under traffic (resharding): ASK while it migrates, then
# MOVED; B's leases follow it to the other master

{
    # to C's master: A's is killed below, and B must stay untouched then
    my ($src, $dst) = ($home{$B}, $home{$C});
    my $slot = 0 + $redis->redis_cli({ port => $src }, 'cluster', 'keyslot',
        (grep { /\}\Q$B\E:/ } $redis->redis_cli({ port => $src }, '--scan',
            '--pattern', "cg:{*}$B:*"))[0] // 'none');
    my $src_id = $redis->redis_cli({ port => $src }, 'cluster', 'myid');
    my $dst_id = $redis->redis_cli({ port => $dst }, 'cluster', 'myid');

    my ($wkey) = grep { /:w:/ } $redis->redis_cli({ port => $src }, '--scan',
        '--pattern', "cg:{*}$B:*");
    my $before = $redis->redis_cli({ port => $src }, 'get', $wkey) || 0;

    traffic_start($B);
    sleep(1);
    $redis->redis_cli({ port => $dst }, 'cluster', 'setslot', $slot,
                      'importing', $src_id);
    $redis->redis_cli({ port => $src }, 'cluster', 'setslot', $slot,
                      'migrating', $dst_id);
    sleep(0.3);
    my @keys = $redis->redis_cli({ port => $src }, 'cluster',
                                 'getkeysinslot', $slot, 1000);
    $redis->redis_cli({ port => $src }, 'migrate', '127.0.0.1', $dst, '',
                      0, 5000, 'keys', @keys) if @keys;
    sleep(0.3);
    my $moved = time;
    for my $p (@ports) {
        $redis->redis_cli({ port => $p }, 'cluster', 'setslot', $slot,
                          'node', $dst_id);
    }
    sleep(1);
    my @rows = traffic_stop();

    my @after = grep { $_->[0] > $moved + 0.3 } @rows;
    is(scalar(grep { $_->[2] >= 500 } @rows), 0, 'resharding: no 5xx');
    ok(@after > 50 && !grep({ $_->[3] =~ /^DOWN/ } @after),
       'resharding: leases again once the slot moved ('
       . scalar(@after) . ' requests)');
    my $count = ($redis->redis_cli({ port => $dst }, 'get', $wkey) || 0)
        - $before;
    my $admitted = grep { $_->[2] == 200 } @rows;
    # what the nodes hold unspent: a lease each (100 ms of its traffic,
    # twice that for a lease in flight)
    my $held = 64 + 0.2 * $admitted / ($rows[-1][0] - $rows[0][0] || 1);
    ok($count >= $admitted - 20 && $count <= $admitted + $held,
       "resharding: the window count on the new master ($count) follows "
       . "what was admitted ($admitted)");
    note(sprintf('resharding: %d of %d requests by the failure policy',
                 scalar(grep { $_->[3] =~ /^DOWN/ } @rows), scalar(@rows)));
}

# a master killed under traffic

traffic_start($A, $B, $C);

sleep(1.5);

my ($victim) = grep { $_->{port} == $mA } @{$redis->{redis}};
my $killed = time;
kill 'KILL', $victim->{pid};
waitpid($victim->{pid}, 0);
delete $victim->{pid};

# promoted: as soon as a replica says it is a master (before the other
# nodes hear of it)

my $promoted;
my @replicas = grep { !$masters->{$_} } @ports;
CG::wait_until(sub {
    for my $p (@replicas) {
        my ($role) = $redis->redis_cli({ port => $p }, 'role');
        if (($role // '') eq 'master') {
            $promoted = time;
            return 1;
        }
    }
    return 0;
}, 15, 0.01);

ok($promoted, sprintf('a replica promoted %.1f s after the kill',
                      ($promoted // time) - $killed));

sleep(2.5);

my (%n, %worst, %down, @fivexx, $last_down);
for my $row (traffic_stop()) {
    my ($at, $client, $status, $how, $ms) = @$row;
    $n{$client}++;
    push @fivexx, "@$row\n" if $status >= 500;
    next if $at < $killed;
    if ($how =~ /^DOWN/) {
        $down{$client}++;
        $last_down = $at if $client eq $A
            && (!defined $last_down || $at > $last_down);
    }
    $worst{$client} = $ms if !defined $worst{$client}
        || $ms > $worst{$client};
}

is(scalar(@fivexx), 0, 'no 5xx through the failover')
    or diag(join '', @fivexx[0 .. ($#fivexx > 9 ? 9 : $#fivexx)]);
ok($down{$A}, "$A (its master killed): the failure policy "
   . ($down{$A} // 0) . " times");
ok(($worst{$A} // 1e9) < 100 + 150 * CG::slow(), "$A: decided within the "
   . "timeout (100 ms): slowest $worst{$A} ms");
ok(!$down{$B} && !$down{$C}, "$B and $C untouched: never the policy")
    or diag(explain \%down);
ok($n{$_} > 100, "$_: $n{$_} requests") for $A, $B, $C;
ok(defined $promoted && defined $last_down
   && $last_down - $promoted < 1.0,
   sprintf("$A: the new master used %.0f ms after its promotion "
           . '(last decision by the policy)',
           1000 * (($last_down // 0) - ($promoted // 0))));

$_->stop() for @nodes;
$_->check_logs() for @nodes;

# "cluster" given, but the server is no Cluster

my $plain = CG->new();
$plain->redis_start();
$plain->write_conf(CG::http(
    redis => '127.0.0.1:%%REDIS_PORT%% cluster',
    location => 'empty_gif;'));
$plain->start();
ok($plain->wait_for_log(qr/redis 127\.0\.0\.1:\d+ is down: the server is not a Redis Cluster node \(its mode: standalone\): remove "cluster"/, 5),
   'a plain Redis with "cluster": the log says so');
is($plain->get('/', { 'X-Client-Id' => 'x' })->{status}, 200,
   'requests decided by the failure policy');
$plain->stop();
$plain->check_logs();

done_testing();
