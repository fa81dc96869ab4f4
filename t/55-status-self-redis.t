#!/usr/bin/perl
# A team's own view under Redis, two nodes on one Redis: the quota use is
# the cluster's count (what Redis said at this node's last lease, and what
# the node holds of it), the same as the status shows on that node, while
# the counters and rates are the node's own; a quota defined in Redis says
# so; deploy markers read from the Redis stream are listed for their own
# team only.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

plan skip_all => 'redis-server not installed'
    unless `command -v redis-server 2>/dev/null`;

my $redis = CG->new();
$redis->redis_start();

$redis->redis_cli('HSET', 'cg:quotas', 'team-r', 'quota=50/h');

my $conf = CG::http(quotas => ['team-a quota=100/h'], redis => 1,
                    http => 'client_guard_status_publish interval=300ms;',
                    status => 1, locations => <<'EOF');
    location = /me {
        client_guard off;
        client_guard_status_self zone=z;
    }
EOF

my ($t1, $t2) = $redis->nodes(2, $conf);
ok($t1->wait_for_link, 'node 1: link up');
ok($t2->wait_for_link, 'node 2: link up');

sub me {
    my ($t, $client) = @_;
    my $r = $t->get('/me', { 'X-Client-Id' => $client });
    return $r->{status} == 200 ? decode_json($r->{content}) : {};
}

sub window_used {
    my ($c) = @_;
    my ($w) = grep { $_->{type} eq 'window' } @{ $c->{quota}{limits} || [] };
    return $w ? $w->{used} : -1;
}

# 15 on node 2, then 10 on node 1: node 1's leases hear of node 2's count
my %st;
$st{ $t2->get('/', { 'X-Client-Id' => 'team-a' })->{status} }++ for 1 .. 15;
$st{ $t1->get('/', { 'X-Client-Id' => 'team-a' })->{status} }++ for 1 .. 10;
is($st{200}, 25, 'every request passed');
$t1->get('/', { 'X-Client-Id' => 'team-b' }) for 1 .. 3;

my $j;
my $ok = CG::wait_until(sub {
    $j = me($t1, 'team-a');
    return window_used($j->{client} || {}) >= 25;
}, 10);
ok($ok, 'node 1: the quota used is the cluster\'s count')
    or diag(explain $j->{client}{quota});

my $c = $j->{client};
is($c->{name}, 'team-a', 'team-a');
is($c->{requests_total}, 10, 'the requests are this node\'s own');
is($c->{quota}{source}, 'config', 'quota from the configuration');
my $used = window_used($c);
my ($key) = $redis->redis_cli('KEYS', 'cg:{team-a}:w:*');
my $charged = $key ? $redis->redis_cli('GET', $key) : -1;
ok($used >= 25 && $used <= $charged,
    "used $used: the 25 admitted, at most the $charged Redis charged "
    . '(with the other node\'s lease unspent)');

# the same record: equal when read in the same state (a lease answer that
# lands between the two reads moves it: read both again)
my ($mine, $theirs) = ($used);
ok(CG::wait_until(sub {
    my $s = decode_json($t1->get('/status?client=team-a')->{content});
    $theirs = window_used($s->{clients}[0]);
    return 1 if $theirs == $mine;
    $mine = window_used(me($t1, 'team-a')->{client} || {});
    return 0;
}, 3), "the same use as the status ($mine, $theirs)");

# a quota defined in Redis
$t1->get('/', { 'X-Client-Id' => 'team-r' }) for 1 .. 2;
$j = me($t1, 'team-r');
is($j->{client}{quota}{source}, 'redis', 'team-r: quota from Redis');
is($j->{client}{quota}{limits}[0]{limit}, 50, 'team-r: its limit');

# markers from the stream: each team sees its own
$redis->redis_cli('XADD', 'cg:deploys', '*', 'team', 'team-a', 'note', 'v9');
$redis->redis_cli('XADD', 'cg:deploys', '*', 'team', 'team-b', 'note', 'v3');
$ok = CG::wait_until(sub {
    $j = me($t1, 'team-a');
    return @{ $j->{deploys} || [] } >= 1;
}, 10);
ok($ok, 'team-a: its marker from Redis') or diag(explain $j->{deploys});
is_deeply([ map { [ $_->{team}, $_->{note}, $_->{source} ] }
            @{ $j->{deploys} } ], [ [ 'team-a', 'v9', 'redis' ] ],
    'only its own marker');

my $r = $t1->get('/me', { 'X-Client-Id' => 'team-a' });
unlike($r->{content}, qr/team-b|team-r/, 'no other team in the answer');

$t1->stop();
$t2->stop();
done_testing();
