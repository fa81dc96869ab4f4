#!/usr/bin/perl

# What the link says when the server it reaches cannot work, at Debian's
# default error_log level (error), once though it retries: a wrong
# password, an unknown user, no password where one is needed, a password
# where none is, a replica (and of which primary), a Redis Cluster node
# without "cluster", a sentinel without "sentinel=", nothing listening.
# The failure policy decides meanwhile; a replica promoted is used.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(sleep);

my $MARK = 'add_header X-Redis $client_guard_redis always; empty_gif;';

sub said {
    my ($t, $re) = @_;
    return grep { /\[error\].*client guard: redis / && /$re/ }
        split /\n/, $t->error_log // '';
}

# case($name, $port, $params, $re): the line, said once in 1.5 s of
# retries; the failure policy decides. Returns the nginx (stopped unless
# keep => 1).
sub case {
    my ($name, $port, $params, $re, %opt) = @_;
    my $t = CG->new(redis_port => $port);
    $t->write_conf(CG::http(quotas => ['default quota=1000/h'],
        location => $MARK,
        redis => "127.0.0.1:$port $params timeout=" . ($opt{timeout} || '300ms')
            . ' connect_timeout=300ms'), workers => 2);
    $t->start();
    ok(CG::wait_until(sub { said($t, $re) }, 5), "$name: said at error")
        or diag($t->error_log);
    sleep 1.5;
    my @lines = said($t, qr/./);
    is(scalar @lines, 1, "$name: once, not per retry nor per worker")
        or diag(join "\n", @lines);
    note($lines[0] // '');
    is($t->get('/', { 'X-Client-Id' => 'c' })->{headers}{'x-redis'},
       'DOWN_LOCAL', "$name: the failure policy decides")
        or diag($t->error_log);
    $t->stop() unless $opt{keep};
    return $t;
}

my $r = CG->new();
my $port = $r->redis_start();
$r->redis_cli('ACL', 'SETUSER', 'cg', 'on', '>right', '~cg:*', '&cg:*',
              '+@all');

case('a wrong password', $port, 'user=cg password=wrong',
     qr/is down: the handshake was refused: AUTH as user "cg": WRONGPASS .*\(a wrong password, or an unknown or disabled user: check user= and password=\)/);
case('an unknown user', $port, 'user=nobody password=right',
     qr/AUTH as user "nobody": WRONGPASS/);
case('a password where the server has none', $port, 'password=pw',
     qr/the handshake was refused: AUTH: ERR AUTH <password> called without any password configured.*\(the server has no password for this user: remove password=/);

{
    my $t = CG->new(redis_port => $port);
    $t->write_conf(CG::http(quotas => ['default quota=1000/h'],
        location => $MARK, redis => 'user=cg password=right'));
    $t->start();
    ok($t->wait_for_link, 'the right user and password: up');
    is(scalar said($t, qr/./), 0, 'nothing said at error');
    $t->stop();
}

{
    my $p = CG->new();
    my $auth = $p->redis_start(args => ['--requirepass', 'pw']);
    case('no password where the server wants one', $auth, '',
         qr/the handshake was refused: HELLO: NOAUTH .*\(the server wants a password: add password=/);
    case('the default user, a wrong password', $auth, 'password=nope',
         qr/AUTH: WRONGPASS .*\(a wrong password: check password=/);
}

# a replica, then promoted

{
    my $primary = CG->new();
    my $pport = $primary->redis_start();
    my $rport = $r->redis_start(args => ['--replicaof', '127.0.0.1', $pport]);
    my $t = case('a replica', $rport, '',
        qr/is down: the server is a replica of 127\.0\.0\.1:$pport \(read-only\): point client_guard_redis at the primary, or use sentinel=/,
        keep => 1);
    $r->redis_cli({ port => $rport }, 'REPLICAOF', 'NO', 'ONE');
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'p' })->{headers}{'x-redis'} // '')
            =~ /^(LEASE|WAITED)$/ }, 8), 'promoted: the link is used');
    ok(CG::wait_until(sub { said($t, qr/is up again/) }, 5),
       '... and said back at error (worker 0)');
    $t->stop();
}

# a cluster node without "cluster"

{
    my $c = CG->new();
    my $cport = $c->redis_start(cluster => 1);
    case('a Redis Cluster node without "cluster"', $cport, '',
         qr/is down: the server is a Redis Cluster node: add "cluster" to client_guard_redis/);
}

# a sentinel without "sentinel="

{
    # redis-server --sentinel (the harness's, as t/58): no redis-sentinel
    # package needed, its log and config in the test's directory
    my $s = CG->new();
    my $sport = $s->sentinel_start($port, name => 'm', quorum => 1);
    case('a sentinel without "sentinel="', $sport, '',
         qr/is down: the server is a Redis Sentinel: with the sentinels' addresses, client_guard_redis needs sentinel=<master name>/);
    $s->redis_stop(0);
}

# not Redis: an HTTP server, and a TLS server's alert to plain text

{
    my $f = CG->new();
    my $http = $f->port('http');
    $f->fake_server($http, sub {
        my ($c) = @_;
        sysread($c, my $b, 1000);
        print $c "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
        sleep 1;
    });
    case('an HTTP server', $http, '',
         qr/is down: protocol error during the handshake: is it a Redis port\?/,
         timeout => '3s');

    my $tls = $f->port('tls');
    $f->fake_server($tls, sub {
        my ($c) = @_;
        sysread($c, my $b, 1000);
        # a fatal alert record: protocol_version (70)
        print $c "\x15\x03\x03\x00\x02\x02\x46";
        sleep 1;
    });
    case('a TLS server answering plain text with an alert', $tls, '',
         qr/is down: the server answers in TLS: add "tls" \(and tls_ca=\)/,
         timeout => '3s');

    my $silent = $f->port('silent');
    $f->fake_server($silent, sub { sleep 10 });
    case('a server that never answers', $silent, '',
         qr/is down: no reply to the handshake in 300 ms \(connect_timeout=\): is it a Redis port\?/);
    $f->stop_fake_servers;
}

# nothing listens: the address and the reason

{
    my $n = CG->new();
    my $free = $n->port('nothing');
    case('nothing listening', $free, '',
         qr/redis 127\.0\.0\.1:$free is down: connect\(\) failed \(111: Connection refused\)/);
}

done_testing();
