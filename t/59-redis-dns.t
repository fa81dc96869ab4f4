#!/usr/bin/perl

# Host names in client_guard_redis resolved again at runtime through
# nginx's resolver when a link reconnects: a Redis moving from 127.0.0.1 to
# 127.0.0.2 behind a name (a DNS responder of the test, on loopback) is
# followed by the node with a "resolver" (a sentinel's name too); every
# address of the name is tried in turn; a failed resolution keeps the last
# addresses.  A node without "resolver" keeps the address of its
# configuration.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(sleep);

my $SLOW = CG::slow();
# a link following a name: the loss seen, a backoff (up to 640 ms), the
# name looked up (the test's DNS responder is a perl process: on a loaded
# machine its answer may miss the resolver's 1 s, and nginx asks again),
# the next address after a refused one, the handshake, then a lease or a
# heartbeat (once a second): seconds on a busy machine, not a timing claim
my $MOVE = 10 * $SLOW;

my $t = CG->new();
my $pa = $t->redis_start();
my $pb = eval { $t->redis_start(bind => '127.0.0.2', port => $pa) };
plan skip_all => "no 127.0.0.2 on loopback: $@" unless $pb;

my $dns = $t->dns_start({ localhost => ['127.0.0.1'] });

sub node {
    my ($http) = @_;
    my $n = CG->new(redis_port => $pa);
    $n->write_conf(CG::http(
        # "c" has a quota of its own: a client without one, far below the
        # default, holds a long lease that outlives Redis going away
        quotas => ['default quota=1000000/h', 'c quota=1000000/h'],
        redis => "localhost:$pa",
        http => $http,
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'empty_gif;'));
    $n->start();
    return $n;
}

my $with = node("resolver 127.0.0.1:$dns valid=1s ipv6=off;\n"
                . "resolver_timeout 1s;");
my $without = node('');

sub word {
    my ($n) = @_;
    return $n->get('/', { 'X-Client-Id' => 'c' })->{headers}{'x-redis'}
        // '';
}

sub on {
    my ($n, $host) = @_;
    my $name = 'node-' . $n->port(0);
    return grep { $_ eq $name } $t->redis_cli({ port => $pa, host => $host },
        'ZRANGE', 'cg:nodes', '0', '-1');
}

for my $n ($with, $without) {
    ok(CG::wait_until(sub { word($n) eq 'LEASE' }, $MOVE),
       'node uses Redis at 127.0.0.1');
}
ok(CG::wait_until(sub { on($with, '127.0.0.1') && on($without, '127.0.0.1') },
   $MOVE), 'both nodes beat on 127.0.0.1');

# the name moves to 127.0.0.2; the old Redis goes away

$t->dns_set({ localhost => ['127.0.0.2'] });
sleep 1.1;
$t->redis_stop(0);

ok(CG::wait_until(sub { word($with) eq 'LEASE' }, $MOVE),
   'with a resolver: the node follows the name to 127.0.0.2');
ok(CG::wait_until(sub { on($with, '127.0.0.2') }, $MOVE),
   'its heartbeats land on 127.0.0.2');
ok($with->wait_for_log(qr/"localhost" resolves to 127\.0\.0\.2:$pa/, 10),
   'the log says where the name points now');

is(word($without), 'DOWN_LOCAL',
   'without a resolver: the configuration\'s address, the failure policy');
ok(!on($without, '127.0.0.2'), 'and nothing on 127.0.0.2');

# two addresses, the first dead: each is tried in turn

$t->redis_restart(0);
$t->dns_set({ localhost => ['127.0.0.3', '127.0.0.1'] });
sleep 1.1;
$t->redis_stop(1);

ok(CG::wait_until(sub { word($with) eq 'LEASE' && on($with, '127.0.0.1') },
   $MOVE), 'the first address refused: the second one is used');

# the name no longer resolves: the last addresses are kept

$t->dns_set({});
sleep 2.1;    # past the resolver's valid=1s of the last lookup
$t->redis_restart(0);

ok(CG::wait_until(sub { word($with) eq 'LEASE' }, $MOVE),
   'a failed resolution keeps the last addresses');
ok($with->wait_for_log(qr/could not resolve "localhost" .*keeping /, 10),
   'and says so in the log');

$_->stop() for $with, $without;

# a sentinel by name: resolved again too, each address in turn

my $sp = $t->sentinel_start($pa, quorum => 1);
$t->dns_set({ localhost => ['127.0.0.3', '127.0.0.1'] });
my $s = CG->new(redis_port => $pa);
$s->write_conf(CG::http(
    quotas => ['default quota=1000000/h'],
    redis => "localhost:$sp sentinel=mymaster",
    http => "resolver 127.0.0.1:$dns valid=1s ipv6=off;",
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'));
$s->start();
ok(CG::wait_until(sub { word($s) eq 'LEASE' }, $MOVE),
   'sentinel by name: the master found');
like($s->error_log, qr/"localhost" resolves to 127\.0\.0\.3:$sp and more/,
     'the sentinel\'s name resolved at runtime');
$s->stop();

done_testing();
