#!/usr/bin/perl

# An ACL user made by the ready line of docs/redis.md ("ACL users") on a
# TLS Redis that wants client certificates: two nginx nodes share a quota
# through it, with change notices, heartbeats, the status publication,
# scope=cluster and a deploy marker; Redis's ACL LOG stays empty (no
# command of the module is refused).  Then a user lacking a command or a
# channel: the line that says which.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

# the line of the docs, with its password
sub acl_line {
    my ($user, $password) = @_;
    open(my $fh, '<', "$CG::ROOT/docs/redis.md") or die "docs/redis.md: $!";
    my ($line) = grep { /^ACL SETUSER client-guard / } <$fh>;
    die "no ACL SETUSER line in docs/redis.md\n" unless $line;
    chomp $line;
    my @w = split ' ', $line;
    s/^>CHANGE-ME$/>$password/ for @w;
    $w[2] = $user;
    return @w;
}

my $r = CG->new();
my $port = $r->redis_start(tls => { clients => 'yes' });
my $ca = $r->openssl_ca;
my ($crt, $key) = $r->make_client_cert('nginx');

is($r->redis_cli(acl_line('client-guard', 'pw-1')), 'OK',
   'the ACL SETUSER line of docs/redis.md is taken by Redis');
$r->redis_cli('HSET', 'cg:quotas', 'shared', 'quota=20/h');
$r->redis_cli('ACL', 'LOG', 'RESET');

my $REDIS = "tls tls_ca=$ca tls_cert=$crt tls_key=$key "
    . 'user=client-guard password=pw-1 timeout=1s connect_timeout=1s';

my @nodes;
for (0 .. 1) {
    my $t = CG->new(redis_port => $port);
    $t->write_conf(CG::http(
        quotas => ['default quota=1000/h'],
        redis => $REDIS,
        http => 'client_guard_status_publish interval=300ms;',
        status => 'deploy_token=acl-token',
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'empty_gif;'), workers => 2);
    $t->start();
    push @nodes, $t;
}

for my $t (@nodes) {
    ok($t->wait_for_link, 'TLS + ACL user: the link is up');
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'probe' })->{headers}{'x-redis'}
         // '') =~ /^(LEASE|WAITED)$/ }, 5), '... and leases are taken');
}

# the quota, cluster-wide: 20 an hour over both nodes

my %codes;
for my $i (1 .. 30) {
    my $t = $nodes[$i % 2];
    $codes{$t->get('/', { 'X-Client-Id' => 'shared' })->{status}}++;
}
is($codes{200}, 20, 'the quota holds over the two nodes: 20 admitted')
    or diag(explain \%codes);
is($codes{429}, 10, '... the others rejected');

# a change notice (SUBSCRIBE on cg:changes) reaches both nodes

$r->redis_cli('HSET', 'cg:quotas', 'notice', 'quota=1/h');
$r->redis_cli('INCR', 'cg:version');
$r->redis_cli('PUBLISH', 'cg:changes', 'x');
for my $t (@nodes) {
    ok(CG::wait_until(sub {
        $t->get('/', { 'X-Client-Id' => 'notice' });
        $t->get('/', { 'X-Client-Id' => 'notice' })->{status} == 429 }, 3),
       'the quota change took effect');
}

# heartbeats, the publication, the cluster view, a deploy marker

ok(CG::wait_until(sub { $r->redis_cli('ZCARD', 'cg:nodes') == 2 }, 5),
   'heartbeats: two nodes');
ok(CG::wait_until(sub {
    my $s = $nodes[0]->get('/status?scope=cluster');
    $s->{status} == 200 && $s->{content} =~ /"shared"/ }, 5),
   'scope=cluster answers from what the nodes published');
is($nodes[1]->request('POST', '/status?deploy=shared&note=v2',
                      { Authorization => 'Bearer acl-token' })->{status},
   201, 'a deploy marker is written (XADD)');
ok(CG::wait_until(sub {
    ($nodes[0]->get('/status')->{content} // '') =~ /"v2"/ }, 5),
   '... and read back by the other node (XREVRANGE)');
sleep 1;

my $acl_log = $r->redis_cli('ACL', 'LOG');
is($acl_log, '', "Redis's ACL LOG is empty: nothing of the module refused")
    or diag($acl_log);
for my $t (@nodes) {
    unlike($t->error_log, qr/refused|NOPERM/,
           'no refusal in the error log');
    $t->stop();
}

# a user lacking a command, or a channel

sub lacking {
    my ($name, $drop, $re) = @_;
    my @line = grep { $_ ne $drop } acl_line('cg-less', 'pw-2');
    is($r->redis_cli(@line), 'OK', "a user without $drop");
    my $t = CG->new(redis_port => $port);
    (my $redis = $REDIS) =~ s/user=client-guard password=pw-1/user=cg-less password=pw-2/;
    $t->write_conf(CG::http(quotas => ['default quota=1000/h'],
                            redis => $redis), workers => 2);
    $t->start();
    $t->get('/', { 'X-Client-Id' => "$name-$_" }) for 1 .. 5;
    ok(CG::wait_until(sub {
        $t->get('/', { 'X-Client-Id' => $name });
        ($t->error_log // '') =~ $re }, 5), "$name: the line says which")
        or diag($t->error_log);
    $t->get('/', { 'X-Client-Id' => "$name-again-$_" }) for 1 .. 20;
    my @lines = grep { /\[error\]/ && /$re/ } split /\n/, $t->error_log;
    is(scalar @lines, 1, "$name: said once (worker 0), not per command")
        or diag(join "\n", @lines);
    note($lines[0] // '');
    $t->stop();
    $r->redis_cli('ACL', 'DELUSER', 'cg-less');
}

lacking('no evalsha', '+evalsha',
        qr/\[error\].*client guard: redis \S+ refused EVALSHA to user "cg-less": NOPERM .*'evalsha'.*docs\/redis\.md, "ACL users"/);
lacking('no channel', '&cg:*',
        qr/\[error\].*client guard: redis \S+ refused SUBSCRIBE to user "cg-less": NOPERM .*channels/);
lacking('no incrby in the script', '+incrby',
        qr/\[error\].*client guard: redis \S+ refused EVALSHA to user "cg-less": ERR (?:ERR )?The user executing the script can't run this command/);

done_testing();
