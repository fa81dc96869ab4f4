#!/usr/bin/perl
# Cluster view: two nodes publish their per-client figures to one Redis;
# "scope=cluster" on either sums them (each node counts only its own
# requests: nothing twice), lists the nodes, and leaves out a node that
# stopped publishing.  Deploy markers travel through the Redis stream: one
# added with XADD, and one posted to a node, show on the other node.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);
use CG;

plan skip_all => 'redis-server not installed'
    unless `command -v redis-server 2>/dev/null`;

my $t1 = CG->new();
my $rport = $t1->redis_start();
my $t2 = CG->new(redis_port => $rport);

my $conf = CG::http(redis => 1,
                    http => 'client_guard_status_publish interval=300ms;',
                    status => 'deploy_token=cluster-token');

$t1->write_conf($conf);
$t2->write_conf($conf);
$t1->start();
$t2->start();

sub traffic {
    my ($t, $client, $n) = @_;
    $t->get('/', { 'X-Client-Id' => $client }) for 1 .. $n;
}

sub cluster {
    my ($t, $q) = @_;
    my $r = $t->get('/status?scope=cluster' . ($q ? "&$q" : ''));
    return undef unless $r->{status} == 200;
    return decode_json($r->{content});
}

sub client {
    my ($j, $name) = @_;
    my ($c) = grep { $_->{name} eq $name } @{ $j->{clients} };
    return $c || {};
}

traffic($t1, 'team-a', 5);
traffic($t1, 'team-b', 2);
traffic($t2, 'team-a', 3);

my $j;
my $ok = CG::wait_until(sub {
    $j = cluster($t1) or return 0;
    return $j->{nodes_reporting} == 2
        && client($j, 'team-a')->{requests_total} == 8;
}, 10);

ok($ok, 'both nodes reporting, team-a summed') or diag(explain $j);
is($j->{scope}, 'cluster', 'scope');
is($j->{nodes_stale}, 0, 'no stale node');
is(scalar @{ $j->{nodes} }, 2, 'two nodes listed');
is(client($j, 'team-a')->{nodes}, 2, 'team-a seen on 2 nodes');
is(client($j, 'team-b')->{requests_total}, 2, 'team-b only on node 1');
is(client($j, 'team-b')->{nodes}, 1, 'team-b on 1 node');
is(client($j, 'team-a')->{responses_by_class_total}{'2xx'}, 8,
    'team-a 2xx summed');
is($j->{clients_total}, 2, 'clients_total');
is($j->{clients}[0]{name}, 'team-a', 'sorted by requests');

my $j2 = cluster($t2);
is(client($j2, 'team-a')->{requests_total}, 8, 'the same from node 2');

# a field no node wrote (a name with a quote) is left out, the answer stays
# valid JSON
{
    my ($key) = grep { !/stats-nodes/ } $t1->redis_cli('KEYS', 'cg:stats:*');
    my $val = $t1->redis_cli('HGET', $key, 'team-a');
    $t1->redis_cli('HSET', $key, 'evil"x', $val);
    my $r = $t1->get('/status?scope=cluster');
    my $jj = eval { decode_json($r->{content}) };
    ok($jj, 'tampered stats: still valid JSON') or diag($r->{content});
    ok($jj && !(grep { $_->{name} =~ /evil/ } @{ $jj->{clients} }),
       'tampered stats: the foreign name is left out');
}

$j = cluster($t1, 'client=team-b');
is($j->{clients_shown}, 1, 'client= in the cluster view');
is($j->{clients}[0]{name}, 'team-b', 'client= finds team-b');
$j = cluster($t1, 'limit=1&sort=name');
is($j->{clients_shown}, 1, 'limit= in the cluster view');
is($j->{clients}[0]{name}, 'team-a', 'sort=name');

# the cluster in Prometheus' format: gauges under other names
my $m = $t1->get('/status?scope=cluster&format=prometheus')->{content};
like($m, qr/^clientguard_cluster_nodes\{state="reporting"\} 2$/m,
    'prometheus: nodes reporting');
like($m, qr/^clientguard_cluster_requests\{client="team-a"\} 8$/m,
    'prometheus: team-a summed');
like($m, qr/^# TYPE clientguard_cluster_requests gauge$/m,
    'prometheus: a sum over nodes is a gauge');
unlike($m, qr/^clientguard_requests_total/m,
    'prometheus: no per-node counter names in the cluster view');
like($t1->get('/status?scope=cluster&format=openmetrics')->{content},
    qr/\n# EOF\n\z/, 'openmetrics: # EOF');

$t1->promtool_ok($m, 'promtool check metrics (cluster)');

# the dashboard in cluster mode
SKIP: {
    skip 'chromium not installed', 3 unless CG::chromium();

    my $dom = $t1->chromium_dom('/status?format=html&scope=cluster');
    like($dom, qr/data-loaded="1"/, 'cluster dashboard loaded');
    like($dom, qr{nodes reporting</div><div class="v">2</div>},
        'cluster dashboard: 2 nodes');
    my ($row) = $dom =~ m{(<tr[^>]*data-client="team-a".*?</tr>)}s;
    my @cells = ($row || '') =~ m{<td[^>]*>(.*?)</td>}gs;
    is($cells[4], '8', 'cluster dashboard: team-a requests summed');
}

# the node view stays per node
my $n1 = decode_json($t1->get('/status')->{content});
my ($a1) = grep { $_->{name} eq 'team-a' } @{ $n1->{clients} };
is($a1->{requests_total}, 5, 'node view: node 1 only');
is($n1->{health}{redis}{link_state}, 'ready', 'node view: link ready');
my $ago = $n1->{health}{redis}{stats_published_ms_ago};
ok($ago >= 0 && $ago < 2000, "node view: published $ago ms ago");

# deploy markers through Redis
$t1->redis_cli('XADD', 'cg:deploys', '*', 'team', 'team-x', 'note', 'v7');
is($t2->request('POST', '/status?deploy=team-y&note=v8',
    { Authorization => 'Bearer cluster-token' })->{status}, 201,
    'POST a marker to node 2');

my $d;
$ok = CG::wait_until(sub {
    $d = decode_json($t1->get('/status')->{content})->{deploys};
    return (grep { $_->{team} eq 'team-x' } @$d)
        && (grep { $_->{team} eq 'team-y' } @$d);
}, 10);
ok($ok, 'node 1 shows both markers') or diag(explain $d);
my ($x) = grep { $_->{team} eq 'team-x' } @$d;
is($x->{note}, 'v7', 'XADD marker note');
is($x->{source}, 'redis', 'XADD marker source');

$d = decode_json($t2->get('/status')->{content})->{deploys};
is(scalar(grep { $_->{team} eq 'team-y' } @$d), 1,
    'the posting node lists its marker once');

# a node that stops publishing goes stale and is no longer summed
$t2->stop();
$ok = CG::wait_until(sub {
    $j = cluster($t1) or return 0;
    return $j->{nodes_stale} == 1 || @{ $j->{nodes} } == 1;
}, 10);
ok($ok, 'node 2 stale after it stopped') or diag(explain $j);
is($j->{nodes_reporting}, 1, 'one node reporting');
is(client($j, 'team-a')->{requests_total}, 5, 'only node 1 counted');

# a client that leaves while its cluster view waits for Redis
$t1->redis_pause();
my $s = $t1->connect();
print $s "GET /status?scope=cluster HTTP/1.0\r\nHost: x\r\n\r\n";
sleep 0.3;
close $s;
sleep 0.2;
$t1->redis_resume();
$ok = CG::wait_until(sub { cluster($t1) }, 10);
ok($ok, 'cluster view works after a client left while waiting');
is($t1->get('/')->{status}, 200, 'still serving');

$t1->stop();
done_testing();
