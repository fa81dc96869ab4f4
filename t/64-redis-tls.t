#!/usr/bin/perl

# TLS to Redis (client_guard_redis ... tls tls_ca= tls_cert= tls_key=):
# against a redis-server on its tls-port with a CA made here, a client
# certificate required (tls-auth-clients yes), the verification on by
# default; the configuration's errors; what each failure looks like in the
# log at Debian's default level (error), once per outage and not per retry:
# a wrong CA, a name the certificate lacks, no client certificate, plain
# text to a TLS port, TLS to a plain port; a restart of the TLS Redis.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(sleep);

my $MARK = 'add_header X-Redis $client_guard_redis always; empty_gif;';
my @QUOTA = (quotas => ['default quota=1000/h']);

# the lease path (LEASE or WAITED) in use
sub redis_used {
    my ($t, $id) = @_;
    return CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => $id })->{headers}{'x-redis'} // '')
            =~ /^(LEASE|WAITED)$/ }, 5);
}

# lines of error.log at [error] about the link
sub said {
    my ($t, $re) = @_;
    my @lines = grep { /\[error\].*client guard: redis / && /$re/ }
        split /\n/, $t->error_log // '';
    return @lines;
}

# --- the configuration -------------------------------------------------------

{
    my $t = CG->new();
    my $ca = $t->openssl_ca;

    for my $case (
        [ 'tls', qr/has "tls" without "tls_ca=".*tls_verify=off/ ],
        [ "tls_ca=$ca tls_cert=$ca", qr/has "tls_cert=" without "tls_key="/ ],
        [ "tls tls_ca=$ca tls_key=$ca", qr/has "tls_key=" without "tls_cert="/ ],
        [ "tls_verify=maybe", qr/invalid parameter "tls_verify=maybe"/ ],
        [ "tls_ca=", qr/invalid parameter "tls_ca="/ ],
        [ "tls_ca=/nonexistent/ca.pem",
          qr/SSL_CTX_load_verify_locations\("\/nonexistent\/ca.pem"\) failed/ ],
        [ "tls_ca=$ca tls_cert=/nonexistent/c.pem tls_key=/nonexistent/k.pem",
          qr/cannot load certificate "\/nonexistent\/c.pem"/ ],
      )
    {
        my ($rc, $out) = $t->nginx_test_conf(CG::http(
            redis => "127.0.0.1:6379 $case->[0]"));
        isnt($rc, 0, "nginx -t fails: $case->[0]");
        like($out, $case->[1], "... and says why: $case->[0]");
        like($out, qr/nginx\.conf:\d+/, '... with the file and line');
    }

    my ($rc, $out) = $t->nginx_test_conf(CG::http(
        redis => "unix:/tmp/redis.sock tls tls_ca=$ca"));
    like($out, qr/on a unix socket: "tls_name="/,
         'a unix socket with TLS needs tls_name=');

    ($rc, $out) = $t->nginx_test_conf(CG::http(
        redis => "unix:/tmp/redis.sock tls tls_ca=$ca tls_name=redis.local"));
    is($rc, 0, 'a unix socket with TLS and tls_name=') or diag($out);

    ($rc, $out) = $t->nginx_test_conf(CG::http(
        redis => 'redis.invalid.:6379 tls tls_verify=off'));
    like($out, qr/host not found|invalid address/,
         'tls_verify=off needs no CA (the address is checked as before)');

    ($rc, $out) = $t->nginx_test_conf(CG::http(
        redis => "127.0.0.1:6379 tls tls_verify=off"));
    is($rc, 0, 'tls_verify=off: no tls_ca= needed') or diag($out);
}

# --- a TLS Redis wanting a client certificate --------------------------------

my $r = CG->new();
my $port = $r->redis_start(tls => { clients => 'yes' });
my $ca = $r->openssl_ca;
my ($ccrt, $ckey) = $r->make_client_cert('nginx');
my $CERT = "tls_cert=$ccrt tls_key=$ckey";
$r->redis_cli('HSET', 'cg:quotas', 'tq', 'quota=5/h');

{
    my $t = CG->new(redis_port => $port);
    $t->write_conf(CG::http(@QUOTA, location => $MARK,
        redis => "tls tls_ca=$ca $CERT timeout=1s connect_timeout=1s"));
    $t->start();
    ok(redis_used($t, 'probe'), 'TLS, verified, client certificate: the '
       . 'lease path is used');
    CG::window_clear(3600, 10);     # counted in one hour's window
    my @codes = map { $t->get('/', { 'X-Client-Id' => 'tq' })->{status} }
        1 .. 7;
    is(join(',', @codes), '200,200,200,200,200,429,429',
       'the quota held in the TLS Redis is enforced');
    like($r->redis_cli('KEYS', 'cg:{tq}:*'), qr/cg:\{tq\}/,
         'the lease keys are in the TLS Redis');
    ok(!said($t, qr/down/), 'nothing said at error while all is well');
    like($t->error_log, qr/\[notice\].*client guard: redis \S+ is up/,
         'the first connection is said at notice');

    # Redis restarts: down and up again at error, once each
    $r->redis_stop();
    ok(CG::wait_until(sub { said($t, qr/is down/) }, 5),
       'a TLS Redis gone: said at error');
    sleep 1;
    $r->redis_restart();
    $r->redis_cli('HSET', 'cg:quotas', 'tq', 'quota=5/h');
    ok(CG::wait_until(sub { said($t, qr/is up again \(down \d+ ms\)/) }, 8),
       'back: "is up again" at error, with how long it was down');
    ok(redis_used($t, 'after'), 'TLS again after the restart');
    my @down = said($t, qr/is down/);
    is(scalar @down, 1, 'one down line for the outage, not one per retry')
        or diag(join "\n", @down);
    $t->stop();
}

# a connection lost (not Redis): the next handshake resumes the session

{
    my $t = CG->new(redis_port => $port);
    $t->write_conf(CG::http(@QUOTA, location => $MARK,
        redis => "tls tls_ca=$ca $CERT timeout=1s connect_timeout=1s"),
        error_log_level => 'debug');
    $t->start();
    ok($t->wait_for_link, 'debug log: up');
    $r->redis_cli('CLIENT', 'KILL', 'TYPE', 'normal');
    $r->redis_cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
    ok(CG::wait_until(sub {
        ($t->error_log // '') =~ /SSL reused session/ }, 5),
       'the next handshake reuses the TLS session (a short handshake)');
    $t->stop();
}

# the server's certificate is for "localhost" and 127.0.0.1; the name is
# the host as written unless tls_name= says otherwise

{
    my $t = CG->new(redis_port => $port);
    $t->write_conf(CG::http(@QUOTA, location => $MARK,
        redis => "localhost:$port tls tls_ca=$ca $CERT timeout=1s "
            . 'connect_timeout=1s'));
    $t->start();
    ok(redis_used($t, 'byname'), 'a host name: verified against its name');
    $t->stop();
}

# each failure: the line that names it, said once though retried

# (at most 2 lines when the server drops a client it refuses: a write may
# fail first, before the read that says why)
sub failure {
    my ($name, $redis, $re, %opt) = @_;
    my $t = CG->new(redis_port => $opt{port} || $port);
    $t->write_conf(CG::http(@QUOTA, location => $MARK,
        redis => "$redis timeout=300ms connect_timeout=300ms"));
    $t->start();
    ok(CG::wait_until(sub { said($t, $re) }, 5), "$name: said at error")
        or diag($t->error_log);
    sleep 1.5;    # several retries
    my @lines = said($t, qr/./);
    my $most = $opt{twice} ? 2 : 1;
    ok(@lines >= 1 && @lines <= $most, "$name: said once, not per retry")
        or diag(join "\n", @lines);
    note($_) for @lines;
    is($t->get('/', { 'X-Client-Id' => 'f' })->{headers}{'x-redis'},
       'DOWN_LOCAL', "$name: the failure policy decides");
    unlike($t->error_log, qr/\[(?:crit|alert)\]/,
           "$name: no crit line from the SSL layer");
    $t->stop();
}

{
    my $other = CG->new();
    my $ca2 = $other->openssl_ca;

    failure('a wrong CA', "tls tls_ca=$ca2 $CERT",
            qr/TLS certificate verification failed: [^:]+ \(\d+\): is tls_ca=\S+ the CA that signed/);

    failure('a name the certificate lacks',
            "tls tls_ca=$ca $CERT tls_name=redis.example.com",
            qr/TLS certificate does not match "redis\.example\.com"/);

    failure('no client certificate', "tls tls_ca=$ca",
            qr/certificate required.*the server wants a client certificate: tls_cert= and tls_key=/, twice => 1);

    failure('a client certificate of another CA',
            "tls tls_ca=$ca tls_cert=" . join(' tls_key=',
                                              $other->make_client_cert('x')),
            qr/(?:unknown ca|bad certificate|certificate unknown).*the server refused this client's certificate/, twice => 1);

    failure('plain text to a TLS port', '',
            qr/during the handshake: is it a TLS port\? then add "tls"/);
}

{
    my $p = CG->new();
    my $plain = $p->redis_start();
    failure('TLS to a plain port', "tls tls_ca=$ca $CERT",
            qr/is down: TLS handshake .*is the server TLS\?/, port => $plain);
}

# verification off: a certificate of any CA is taken (said in the docs)

{
    my $t = CG->new(redis_port => $port);
    $t->write_conf(CG::http(@QUOTA, location => $MARK,
        redis => "tls tls_verify=off $CERT timeout=1s connect_timeout=1s"));
    $t->start();
    ok(redis_used($t, 'noverify'), 'tls_verify=off: connected');
    $t->stop();
}

done_testing();
