#!/usr/bin/perl

# The module builds, loads and does not get in the way; the harness works.
# Uses no directive of the module: only load_module.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;

ok(-f $CG::MODULE, "module built: $CG::MODULE");

my $t = CG->new();

my $http = <<'EOF';
server {
    listen 127.0.0.1:%%PORT%%;
    location / { empty_gif; }
    location /redis { return 200 "redis %%REDIS_PORT%%\n"; }
}
EOF

# the listen port is substituted and stable
my $port = $t->port(0);
is($t->port(0), $port, 'port(0) is stable');
isnt($t->port(1), $port, 'port(1) differs');

my $rport = $t->redis_start();
is($t->redis_port, $rport, 'redis_port');
is($t->redis_cli('PING'), 'PONG', 'redis PING');
$t->redis_cli('SET', 'cg:test', 'value');
is($t->redis_cli('GET', 'cg:test'), 'value', 'redis SET/GET');

my ($rc, $out) = $t->nginx_test_conf($http);
is($rc, 0, 'nginx -t with load_module') or diag($out);
like($out, qr/test is successful/, 'nginx -t output');

($rc, $out) = $t->nginx_test_conf("$http\nno_such_directive 1;\n");
isnt($rc, 0, 'nginx -t fails on a bad config');
like($out, qr/unknown directive "no_such_directive"/, 'nginx -t message');

$t->write_conf($http);
$t->start();

my $r = $t->get('/');
is($r->{status}, 200, 'GET / with the module loaded');
is($r->{headers}{'content-type'}, 'image/gif', 'empty_gif answers');
is($t->get('/redis')->{content}, "redis $rport\n", '%%REDIS_PORT%%');
is_deeply($t->statuses(5, '/'), { 200 => 5 }, 'statuses');

my @workers = $t->worker_pids;
is(scalar @workers, 1, 'one worker');
ok($t->reload(), 'reload');
my @new = $t->worker_pids;
is(scalar @new, 1, 'one worker after reload');
isnt($new[0], $workers[0], 'a new worker');
is($t->get('/')->{status}, 200, 'GET / after reload');

# a reload nginx refuses leaves the old configuration running
$t->write_conf("$http\nno_such_directive 1;\n");
is($t->reload(), 0, 'bad reload is refused');
is($t->get('/')->{status}, 200, 'still serving after a refused reload');

$t->error_log_like(qr/\[notice\].*start worker process/,
    'error.log at level info');

my $took = $t->stop();
ok(defined $took && $took < 5, 'nginx exits promptly on QUIT');
is($t->get('/')->{status}, 599, 'nginx is gone');

$t->redis_stop();
ok(!IO::Socket::INET->new(PeerAddr => "127.0.0.1:$rport"), 'redis is gone');

done_testing();
