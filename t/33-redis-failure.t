#!/usr/bin/perl

# Redis killed, paused (SIGSTOP) and restarted mid-traffic, for each failure
# policy: requests are answered within the timeout plus a margin, decided by
# the policy ($client_guard_redis says how), the link recovers on its own,
# and each transition is logged once.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);

# generous: a loaded test machine stalls now and then; a request held up by
# a dead Redis would take seconds (connect timeouts, backoff), not this
my $MARGIN = 0.7 * CG::slow();
my @own;

sub redis_on {
    my ($port, $dir) = @_;
    my $pid = fork;
    if ($pid == 0) {
        open(STDOUT, '>>', "$dir/redis-restart.log");
        open(STDERR, '>&', \*STDOUT);
        exec('redis-server', '--port', $port, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', $dir)
            or POSIX::_exit(127);
    }
    push @own, $pid;
    CG::wait_until(sub {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or return 0;
        print $s "PING\r\n";
        my $l = <$s>;
        return defined $l && $l =~ /PONG/;
    }, 5) or die "redis did not restart\n";
    return $pid;
}

END { kill 'KILL', @own if @own }

sub timed {
    my ($t, $client) = @_;
    my $t0 = time;
    my $r = $t->get('/', { 'X-Client-Id' => $client });
    return ($r, time - $t0);
}

my %expect = (
    'open'       => [ 200, 'DOWN_OPEN' ],
    'closed=503' => [ 503, 'DOWN_CLOSED' ],
    'local'      => [ 200, 'DOWN_LOCAL' ],
);

for my $policy ('open', 'closed=503', 'local') {
    my ($code, $how) = @{$expect{$policy}};

    my $t = CG->new();
    my $rport = $t->redis_start();
    $t->redis_cli('HSET', 'cg:quotas', 'default', 'quota=100000/h',
                  'small', 'quota=4/h');

    # the clients asked while Redis is paused have a quota of their own
    # (Redis restarts empty: in the configuration): a client without one
    # is counted on the node for its first "ahead" requests (docs/redis.md)
    $t->write_conf(CG::http(
        quotas => ['default quota=100000/h',
                   map { "p$_ quota=100000/h" } 1 .. 10],
        redis => 'timeout=100ms connect_timeout=100ms',
        http => "client_guard_redis_failure $policy;",
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'empty_gif;'), workers => 2);
    $t->start();

    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'warm' })->{headers}{'x-redis'} // '')
            eq 'LEASE' }, 5), "$policy: lease path in use");

    # killed

    $t->redis_stop();
    my ($worst, @how, %codes) = (0);
    for my $i (1 .. 10) {
        my ($r, $took) = timed($t, "c$i");
        $worst = $took if $took > $worst;
        push @how, $r->{headers}{'x-redis'} // '';
        $codes{$r->{status}}++;
    }
    ok($worst < 0.1 + $MARGIN, sprintf("$policy: Redis killed, answered "
       . "within timeout + margin (worst %.3f s)", $worst));
    is($codes{$code}, 10, "$policy: killed: all $code") or diag(explain \%codes);
    is($how[-1], $how, "$policy: killed: \$client_guard_redis $how");

    if ($policy eq 'local') {
        my $c = $t->statuses(6, '/', { 'X-Client-Id' => 'small' });
        is_deeply($c, { 200 => 4, 429 => 2 },
                  'local: the quota is enforced locally while Redis is down');
    }

    # restarted on the same port

    my $pid = redis_on($rport, $t->dir);
    my $t0 = time;
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'back' })->{headers}{'x-redis'} // '')
            =~ /^(LEASE|WAITED)$/ }, 8, 0.05),
       sprintf("$policy: recovers after a restart (%.1f s)", time - $t0));

    # paused

    kill 'STOP', $pid;
    ($worst, @how, %codes) = (0);
    for my $i (1 .. 10) {
        my ($r, $took) = timed($t, "p$i");
        $worst = $took if $took > $worst;
        push @how, $r->{headers}{'x-redis'} // '';
        $codes{$r->{status}}++;
    }
    ok($worst < 0.1 + $MARGIN, sprintf("$policy: Redis paused, answered "
       . "within timeout + margin (worst %.3f s)", $worst));
    is($codes{$code}, 10, "$policy: paused: all $code") or diag(explain \%codes);
    is($how[-1], $how, "$policy: paused: \$client_guard_redis $how");

    kill 'CONT', $pid;
    $t0 = time;
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'again' })->{headers}{'x-redis'} // '')
            =~ /^(LEASE|WAITED)$/ }, 8, 0.05),
       sprintf("$policy: recovers after a pause (%.1f s)", time - $t0));

    # worker 0 logs; it may reconnect a little after the worker that
    # answered the request above
    my ($log, $down, $up);
    CG::wait_until(sub {
        $log = $t->error_log;
        # up at notice first, then down and up again at error; a down line
        # that says another reason within the same outage is no transition
        my $state = '';
        ($down, $up) = (0, 0);
        for ($log =~ /\[(?:error|notice)\].*client\ guard:\ redis\ \S+\ is
                      \ (down|up)/gx)
        {
            $down++ if $_ eq 'down' && $state ne 'down';
            $up++ if $_ eq 'up';
            $state = $_;
        }
        return $up == $down + 1;
    }, 6);

    # 2 outages, 20 requests during them (worker 0 logs; it may miss a
    # short pause when it has nothing in flight); a loaded machine may add
    # a flap
    ok($down >= 1 && $down <= 4, "$policy: a log line per outage ($down), "
       . 'not per request');
    is($up, $down + 1, "$policy: a log line per recovery")
        or diag(join "\n", $log =~ /^(.*client guard: redis.*)$/mg);

    my $took = $t->stop();
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# local share: two nodes know of each other through heartbeats; while Redis
# is down each admits half of the quota

{
    my $r = CG->new();
    my $rport = $r->redis_start();
    $r->redis_cli('HSET', 'cg:quotas', 'half', 'quota=10/h');
    my @nodes;
    for (0 .. 1) {
        my $t = CG->new(redis_port => $rport);
        $t->write_conf(CG::http(redis => 'timeout=100ms'));
        $t->start();
        push @nodes, $t;
    }
    ok(CG::wait_until(sub {
        $r->redis_cli('ZCARD', 'cg:nodes') == 2 }, 5), 'local share: '
       . 'two nodes in the heartbeat set');
    sleep 1.2;    # each worker has read the count
    $r->redis_stop();
    for my $i (0 .. 1) {
        is_deeply($nodes[$i]->statuses(7, '/', { 'X-Client-Id' => 'half' }),
                  { 200 => 5, 429 => 2 },
                  "local share: node $i admits half of quota=10/h");
    }
    $_->stop() for @nodes;
}

done_testing();
