#!/usr/bin/perl

# The harness itself (t/lib/CG.pm): redis control, fake servers, TLS client
# certificates, several nginx instances, worker handling. No directive of
# the module is used.

use strict;
use warnings;

use lib 't/lib';
use CG;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);

my $t = CG->new();

# --- redis: two instances, pause/resume, restart ---------------------------

my $r0 = $t->redis_start();
my $r1 = $t->redis_start();
isnt($r0, $r1, 'two redis instances');
is($t->redis_port(1), $r1, 'redis_port(1)');
$t->redis_cli({ port => $r1 }, 'SET', 'k', 'one');
is($t->redis_cli({ port => $r1 }, 'GET', 'k'), 'one', 'redis_cli on port');
is($t->redis_cli('GET', 'k'), '', 'instances are separate');
is_deeply([$t->redis_cli('MGET', 'a', 'b')], ['', ''], 'list context');

$t->redis_pause(1);
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$r1");
print $s "PING\r\n";
my $rin = '';
vec($rin, fileno($s), 1) = 1;
is(select(my $rout = $rin, undef, undef, 0.3), 0, 'paused redis is silent');
$t->redis_resume(1);
ok(select($rout = $rin, undef, undef, 5), 'resumed redis answers');
like(scalar <$s>, qr/^\+PONG/, 'the queued PING');
close $s;

$t->redis_stop(1);
ok(!IO::Socket::INET->new(PeerAddr => "127.0.0.1:$r1"), 'redis 1 stopped');
is($t->redis_restart(1), $r1, 'redis 1 restarted on its port');
is($t->redis_cli({ port => $r1 }, 'PING'), 'PONG', 'and answers');

# --- fake server -----------------------------------------------------------

my $fport = $t->port('fake');
$t->fake_server($fport, sub {
    my ($c) = @_;
    while (my $line = <$c>) {
        print $c "-ERR fake says no\r\n" if $line =~ /^\*/;
    }
});
is(scalar $t->redis_cli({ port => $fport }, 'PING'), 'ERR fake says no',
   'fake server answers');
my $closing = $t->port('closing');
$t->fake_server($closing, sub { close $_[0] });
my $c = $t->connect($closing);
is(scalar <$c>, undef, 'fake server that closes');

# --- nginx with TLS and client certificates; a second instance ------------

my $ca = $t->openssl_ca();
my ($scrt, $skey) = $t->server_cert();
my ($ccrt, $ckey) = $t->make_client_cert('team-a');
ok(-s $ca && -s $scrt && -s $ccrt, 'certificates made');

$t->write_conf(<<"EOF", workers => 2, access_log => 0);
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { empty_gif; }
    }
    server {
        listen 127.0.0.1:%%PORT1%% ssl;
        ssl_certificate $scrt;
        ssl_certificate_key $skey;
        ssl_client_certificate $ca;
        ssl_verify_client optional;
        location / {
            add_header X-DN \$ssl_client_s_dn always;
            empty_gif;
        }
    }
EOF
$t->start();
is(scalar(my @w = $t->worker_pids), 2, 'two workers');

SKIP: {
    skip 'IO::Socket::SSL missing (make deps)', 2
        unless eval { require IO::Socket::SSL; 1 };
    my $r = $t->get('/', undef, port => $t->port(1), https => 1,
                    cert => $ccrt, key => $ckey);
    is($r->{status}, 200, 'https with a client certificate');
    is($r->{headers}{'x-dn'}, 'CN=team-a,O=example', 'subject DN');
}

my $t2 = CG->new(redis_port => $r0);
$t2->write_conf(<<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "%%REDIS_PORT%%"; }
    }
EOF
$t2->start();
isnt($t2->port(0), $t->port(0), 'second instance, own port');
is($t2->get('/')->{content}, $r0, 'shares the first redis');
is($t->get_port($t2->port(0), '/')->{content}, $r0, 'get_port');

# a reload with more workers
$t2->write_conf(<<'EOF', workers => 3);
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "reloaded"; }
    }
EOF
ok($t2->reload(), 'reload');
is(scalar(my @w2 = $t2->worker_pids), 3, 'three workers after reload');
is($t2->get('/')->{content}, 'reloaded', 'new configuration serves');
$t2->stop();

# --- log check: an alert is reported unless allowed -------------------------

my $log = $t->dir . '/error.log';
open(my $fh, '>>', $log) or die;
print $fh "2000/01/01 00:00:00 [alert] 1#1: planted by the test\n";
close $fh;
$t->allow_alerts(1);
my $took = $t->stop();
ok($took < 5, 'stop returns the seconds taken');

ok(CG::wait_until(sub { 1 }, 1), 'wait_until true');
my $t0 = time;
ok(!CG::wait_until(sub { 0 }, 0.3), 'wait_until times out');
ok(time - $t0 >= 0.3, 'after the timeout');

# window_clear: a 2 s window is always less than 2 s from its end
ok(CG::window_clear(2, 2) > 0, 'window_clear sleeps when the edge is near');
my $into = time - 2 * int(time / 2);
ok($into >= 0.2 && $into < 0.6, sprintf('and returns just past the edge '
   . '(%.2f s into the next window)', $into));
is(CG::window_clear(2, 1), 0, 'window_clear: no sleep with time to spare');

done_testing();
