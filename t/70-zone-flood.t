#!/usr/bin/perl
# A flood of random client names cannot reset or bypass a limited client's
# counters (issue 13): a zone that holds 16 clients, thousands of random
# names at full speed, while three teams with quotas of their own, a busy
# team under the default quota and a team the default quota limits keep
# sending.  Each is admitted exactly as its limits say, in local mode and
# under Redis; the flood's names evict only each other.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my @teams = (
    # name, requests admitted of the 60 sent (a test far shorter than the
    # minute the rate needs for one more)
    [ 'team-a', 20 ],    # quota=20/h
    [ 'team-b', 10 ],    # rate=1r/m burst=9
    [ 'team-c', 15 ],    # quota=15/h rate=100r/s
    [ 'team-busy', 25 ], # the default, quota=25/h: seen again, not evicted
);

sub flood {
    my ($t, $label, %opt) = @_;

    my $http = HTTP::Tiny->new(keep_alive => 1);
    my $port = $t->port(0);
    my $base = "http://127.0.0.1:$port/";
    my (%ok, %st);

    my $req = sub {
        my ($name) = @_;
        my $r = $http->get($base, { headers => { 'X-Client-Id' => $name } });
        return $r->{status};
    };

    # the busy team was seen before the flood, as such a team would be
    $ok{'team-busy'} += $req->('team-busy') == 200 for 1 .. 2;
    $ok{'team-r'} += $req->('team-r') == 200 if $opt{redis};

    for my $round (1 .. 60) {
        for (1 .. 50) {
            $st{ $req->(sprintf 'rnd-%08x', int rand 0xffffffff) }++;
        }

        for my $team (map { $_->[0] } @teams) {
            next if $team eq 'team-busy' && $round > 58;
            $ok{$team} += $req->($team) == 200;
        }

        $ok{'team-r'} += $req->('team-r') == 200 if $opt{redis};

        # a team under the default quota that went over it stays limited
        $ok{'team-over'} += $req->('team-over') == 200;
    }

    is_deeply(\%st, { 200 => 3000 }, "$label: the flood's 3000 names served");

    for my $team (@teams) {
        is($ok{ $team->[0] } // 0, $team->[1],
           "$label: $team->[0] admitted exactly $team->[1] times");
    }

    # its first request came in the flood: that record was evicted while
    # new, and the count of one request with it (local mode); the zone
    # remembered the name, and its next record was safe
    my $over = $ok{'team-over'};
    ok($over == 25 || (!$opt{redis} && $over == 26),
       "$label: team-over limited by the default quota, not reset ($over)");

    is($ok{'team-r'}, 12, "$label: team-r has its quota from Redis (12/h)")
        if $opt{redis};

    my $j = decode_json($http->get("${base}status?format=json")->{content});
    my $by = $j->{health}{evictions_by_tier};

    ok($by->{new} >= 2900, "$label: the flood evicted its own names "
       . "($by->{new})");
    is($by->{returning} + $by->{limited} + $by->{own}, 0,
       "$label: no team evicted");
}

my $conf = sub {
    my (%o) = @_;
    return CG::http(
        zone => 'z:1m clients=16',
        quotas => ['default quota=25/h', 'team-a quota=20/h',
                   'team-b rate=1r/m burst=9',
                   'team-c quota=15/h rate=100r/s'],
        status => 1,
        %o);
};

# local mode, two workers sharing the zone

my $t = CG->new();
$t->write_conf($conf->(), workers => 2);
$t->start();
flood($t, 'local');
$t->stop();

# under Redis: the counts are the cluster's, the records the node's

my $r = CG->new();
$r->redis_start();
$r->redis_cli('HSET', 'cg:quotas', 'team-r', 'quota=12/h');
$r->write_conf($conf->(redis => 'timeout=2s'), workers => 2);
$r->start();
$r->wait_for_link();
ok(CG::wait_until(sub {
    ($r->get('/status?format=json')->{content} // '')
        =~ /"quota_sync_age_s":\d/
}, 5), 'redis: quotas loaded');
flood($r, 'redis', redis => 1);
$r->stop();

done_testing();
