#!/usr/bin/perl

# Reload and QUIT while Redis is down or silent (QUIT exits promptly), a
# reload with Redis up, and the module next to Debian's nchan module, which
# carries its own hiredis.

use strict;
use warnings;

use lib 't/lib';
use CG;
use FaultProxy;
use Test::More;
use Time::HiRes qw(time sleep);

# client_guard_redis $redis (its address, then parameters, or parameters
# for the first redis instance); %opt: more for CG::http
my $TIMEOUTS = 'timeout=100ms connect_timeout=100ms';

sub conf {
    my ($redis, %opt) = @_;
    # "w" has a quota of its own: its first request waits for a lease
    return CG::http(quotas => ['default quota=1000/h', 'w quota=1000/h'],
                    redis => $redis,
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'empty_gif;', %opt);
}

my $conf = conf("127.0.0.1:%%PORT1%% $TIMEOUTS");

# down: nothing listens on PORT1

{
    my $t = CG->new();
    $t->write_conf($conf, workers => 2);
    $t->start();
    is($t->get('/', { 'X-Client-Id' => 'a' })->{status}, 200, 'down: serving');
    ok($t->reload(), 'down: reload completes');
    is($t->get('/', { 'X-Client-Id' => 'a' })->{status}, 200,
       'down: serving after reload');
    my $took = $t->stop();
    ok($took < 2, sprintf('down: QUIT exits promptly (%.2f s)', $took));
}

# silent: accepts, never answers (no Redis behind); a request in flight
# during the QUIT

{
    my $t = CG->new();
    $t->fake_server($t->port(1), FaultProxy::handler(mode => 'silent'));
    $t->write_conf($conf, workers => 2);
    $t->start();
    ok($t->reload(), 'silent: reload completes');
    my $s = $t->connect();
    print $s "GET / HTTP/1.1\r\nHost: x\r\nX-Client-Id: q\r\n"
        . "Connection: close\r\n\r\n";
    my $took = $t->stop();
    ok($took < 2, sprintf('silent: QUIT exits promptly (%.2f s)', $took));
    my $resp = do { local $/; <$s> } // '';
    like($resp, qr/^HTTP\/1\.1 200/, 'silent: the request in flight was answered');
}

# a request waiting for a lease while nginx reloads: the old worker answers
# it (by the policy, after the timeout) and exits.  A real Redis behind a
# proxy that holds back everything from the first EVALSHA on.

{
    my $t = CG->new();
    $t->redis_start();
    $t->fake_server($t->port(1), FaultProxy::handler(
        redis => $t->redis_port, hang => 'EVALSHA'));
    $t->write_conf(conf('127.0.0.1:%%PORT1%% timeout=500ms '
                        . 'connect_timeout=100ms'));
    $t->start();
    ok($t->wait_for_link, 'waiting: the link is up (the lease fetch hangs)');
    my $s = $t->connect();
    print $s "GET / HTTP/1.1\r\nHost: x\r\nX-Client-Id: w\r\n"
        . "Connection: close\r\n\r\n";
    sleep 0.1;
    my $t0 = time;
    ok($t->reload(), 'waiting: reload completes');
    my $resp = do { local $/; <$s> } // '';
    like($resp, qr/^HTTP\/1\.1 200.*X-Redis: DOWN_LOCAL/s,
         'waiting: the request is answered by the policy');
    ok(time - $t0 < 1.5, 'waiting: within the timeout');
    is($t->get('/', { 'X-Client-Id' => 'n' })->{status}, 200,
       'waiting: the new workers serve');
    $t->stop();
}

# up: the lease path survives a reload

{
    my $t = CG->new();
    $t->redis_start();
    $t->redis_cli('HSET', 'cg:quotas', 'r', 'quota=5/h');
    $t->write_conf(conf($TIMEOUTS), workers => 2);
    $t->start();
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'a' })->{headers}{'x-redis'} // '')
            eq 'LEASE' }, 5), 'up: lease path');
    my $n = $t->statuses(3, '/', { 'X-Client-Id' => 'r' });
    ok($t->reload(), 'up: reload');
    my $m = $t->statuses(3, '/', { 'X-Client-Id' => 'r' });
    is(($n->{200} // 0) + ($m->{200} // 0), 5,
       'up: the count goes on across the reload');
    $t->stop();
}

# a unix socket, AUTH and SELECT

{
    my $t = CG->new();
    my $sock = $t->dir . '/redis.sock';
    $t->redis_start(args => ['--unixsocket', $sock, '--unixsocketperm', '777']);
    $t->redis_cli('CONFIG', 'SET', 'requirepass', 'pw');
    $t->write_conf(conf("unix:$sock password=pw db=3 $TIMEOUTS"));
    $t->start();
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'u' })->{headers}{'x-redis'} // '')
            eq 'LEASE' }, 5), 'unix socket with AUTH: lease path');
    my $keys = join ' ', $t->redis_cli('-a', 'pw', '--no-auth-warning',
                                       '-n', 3, '--scan');
    like($keys, qr/cg:\{u\}:w:/, 'keys are in the selected database');
    $t->stop();
}

{
    my $t = CG->new();
    $t->redis_start();
    $t->redis_cli('CONFIG', 'SET', 'requirepass', 'pw');
    $t->write_conf(conf("password=wrong $TIMEOUTS"));
    $t->start();
    ok($t->wait_for_log(
           qr/redis \S+ is down: the handshake was refused: AUTH: WRONGPASS/,
           3),
       'wrong password: the refusal is logged');
    is($t->get('/', { 'X-Client-Id' => 'w' })->{headers}{'x-redis'},
       'DOWN_LOCAL', 'wrong password: the failure policy decides');
    $t->stop();
}

# hiredis is linked in with its symbols hidden: nothing to clash with

my $exported = grep { /\sT\s+redis/ } `nm -D $CG::MODULE`;
is($exported, 0, 'the module exports no hiredis symbol');

# next to nchan (hiredis 1.x inside): both load, our link works

# Debian's nchan loads only into the nginx it was built for: with another
# nginx under test (NGINX_BIN, make test-static NGINX_SRC=...) of another
# version, the check does not apply (not a skip: nothing is missing)

my $debian = `/usr/sbin/nginx -v 2>&1` // '';
my $ours = `$CG::NGINX -v 2>&1` // '';
my $nchan_applies = $debian eq $ours;
note("nchan check left out: $ours is not Debian's $debian")
    unless $nchan_applies;

SKIP: {
    my $nchan = '/usr/lib/nginx/modules/ngx_nchan_module.so';
    last SKIP unless $nchan_applies;
    skip 'libnginx-mod-nchan not installed', 3 unless -f $nchan;

    my $t = CG->new();
    $t->redis_start();
    my $c = conf($TIMEOUTS, http => <<'EOF3');
server {
    listen 127.0.0.1:%%PORT2%%;
    location /pub { nchan_publisher; nchan_channel_id test; }
}
EOF3
    $t->redis_cli('HSET', 'cg:quotas', 'n', 'quota=2/h');
    $t->write_conf($c, main => "load_module $nchan;", workers => 2);
    $t->start();
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'a' })->{headers}{'x-redis'} // '')
            eq 'LEASE' }, 5), 'nchan: our Redis link works next to nchan');
    is_deeply($t->statuses(3, '/', { 'X-Client-Id' => 'n' }),
              { 200 => 2, 429 => 1 }, 'nchan: Redis quota enforced');
    $t->stop();
}

done_testing();
