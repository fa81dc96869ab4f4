#!/usr/bin/perl

# The module builds, loads and is active: nginx knows its directives only
# with it loaded, and a guarded location names the client ($client_guard_client
# in a header and the access log) and limits it. The harness works.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;

# built in (CG_STATIC, make test-static): nginx -V names this tree
if ($ENV{CG_STATIC}) {
    like(scalar `$CG::NGINX -V 2>&1`, qr/--add-module=\Q$CG::ROOT\E(?:\s|$)/m,
         "module built into $CG::NGINX");
} else {
    ok(-f $CG::MODULE, "module built: $CG::MODULE");
}

my $t = CG->new();

# no quota for other clients: they are never limited
my $http = CG::http(
    quotas => ['team-zero rate=1r/m burst=0'],
    server => <<'EOF', locations => <<'EOF2');
    add_header X-Client $client_guard_client always;
    add_header X-Guard $client_guard_status always;
EOF
    location /redis {
        client_guard off;
        return 200 "redis %%REDIS_PORT%%\n";
    }
EOF2

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

# the module's directives are its own: unknown without load_module (built
# in, nginx has them either way: the check does not apply, not a skip)
if ($ENV{CG_STATIC}) {
    note('CG_STATIC: no nginx without the module to compare with');
} else {
    ($rc, $out) = $t->nginx_test_conf($http, no_module => 1);
    isnt($rc, 0, 'nginx -t without load_module fails');
    like($out, qr/unknown directive "client_guard_zone"/,
         'client_guard_zone is the module\'s directive');
}

($rc, $out) = $t->nginx_test_conf("$http\nno_such_directive 1;\n");
isnt($rc, 0, 'nginx -t fails on a bad config');
like($out, qr/unknown directive "no_such_directive"/, 'nginx -t message');

$t->write_conf($http, access_log => 1);
$t->start();

my $r = $t->get('/');
is($r->{status}, 200, 'GET / with the module loaded');
is($r->{headers}{'content-type'}, 'image/gif', 'empty_gif answers');
is($r->{headers}{'x-client'}, 'unknown', 'no rule matched: the fallback');

# the access phase runs: the client is named (the name lowercased), counted
# and limited
my @r = map { $t->get('/', { 'X-Client-Id' => 'Team-Zero' }) } 1 .. 2;
is(join(' ', map { "$_->{status} " . ($_->{headers}{'x-client'} // '-')
                   . ' ' . ($_->{headers}{'x-guard'} // '-') } @r),
   '200 team-zero PASSED 429 team-zero REJECTED',
   '$client_guard_client, $client_guard_status; rate=1r/m burst=0 holds');
# (the log line is written after the response went out)
ok($t->wait_until(sub {
       grep { /^127\.0\.0\.1 team-zero PASSED 200 "GET \/ / } $t->access_log
   }, 5), '$client_guard_client in the access log')
    or diag(scalar $t->access_log);
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
