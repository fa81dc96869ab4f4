#!/usr/bin/perl

# Recovery after a Redis outage, for each failure policy, under traffic
# through 2 nginx nodes of 2 workers each: Redis killed and started again,
# then stopped (SIGSTOP) and continued.  From the moment Redis answers again,
# every worker decides by Redis (a lease: $client_guard_redis LEASE, WAITED
# or AHEAD) within 1 s; the module answers no 5xx but the configured
# "closed" status while Redis is away; no connection error.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX qw(_exit);

my $OUTAGE = $ENV{CG_OUTAGE} || 3;    # the backoff reaches its cap
my $AFTER = 1.5 * CG::slow();
my $LIMIT = 1.0 * CG::slow();

# traffic: $n processes, each a new connection per request (so that both
# workers of a node get some), alternating between the nodes; one line per
# request: time node worker status how
sub traffic {
    my ($file, $n, @ports) = @_;
    my @pids;
    for my $k (1 .. $n) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open(my $out, '>>', "$file.$k") or _exit(1);
            $out->autoflush(1);
            my $i = 0;
            while (1) {
                my $node = $i++ % @ports;
                my $s = IO::Socket::INET->new(
                    PeerAddr => "127.0.0.1:$ports[$node]", Timeout => 5);
                my ($status, $how, $pid) = (599, '', 0);
                if ($s) {
                    print $s "GET / HTTP/1.0\r\nX-Client-Id: c$k\r\n\r\n";
                    my $resp = do { local $/; <$s> } // '';
                    $status = $1 if $resp =~ m{^HTTP/1\.\d (\d+)};
                    $how = $1 if $resp =~ /^X-Redis: (\S+)/mi;
                    $pid = $1 if $resp =~ /^X-Pid: (\d+)/mi;
                }
                printf $out "%.4f %d %d %d %s\n", time, $node, $pid,
                    $status, $how || '-';
                sleep 0.01;
            }
        }
        push @pids, $pid;
    }
    return @pids;
}

sub lines {
    my ($file, $n) = @_;
    my @l;
    for my $k (1 .. $n) {
        open(my $fh, '<', "$file.$k") or next;
        push @l, map { [ split ] } <$fh>;
    }
    return sort { $a->[0] <=> $b->[0] } @l;
}

my %closed = ('closed' => 503);

for my $policy ('open', 'closed', 'local') {
    my $r = CG->new();
    my $rport = $r->redis_start();
    # quotas of their own: a client without one, far below the default,
    # holds a long lease (docs/redis.md) that outlives a short outage
    $r->redis_cli('HSET', 'cg:quotas', 'default', 'quota=10000000/h',
                  map { ("c$_", 'quota=10000000/h') } 1 .. 4);
    $r->redis_cli('SET', 'cg:version', 1);

    my @nodes;
    for (0 .. 1) {
        my $t = CG->new(redis_port => $rport);
        $t->write_conf(CG::http(
            quotas => ['default quota=10000000/h'],
            redis => 'timeout=100ms connect_timeout=100ms',
            http => "client_guard_redis_failure $policy;",
            location => 'add_header X-Redis $client_guard_redis always; '
                . 'add_header X-Pid $pid always; empty_gif;'),
            workers => 2);
        $t->start();
        push @nodes, $t;
    }

    for my $event ('kill', 'stop') {
        my $file = $r->dir . "/traffic-$event";
        my @gen = traffic($file, 4, map { $_->port(0) } @nodes);
        sleep 1;

        if ($event eq 'kill') {
            $r->redis_stop();
        } else {
            $r->redis_cli('CONFIG', 'RESETSTAT');
            $r->redis_pause();
        }
        my $t_down = time;
        sleep $OUTAGE;

        my $t_back;
        if ($event eq 'kill') {
            # from when PING answers (the harness polls every 50 ms): the
            # start of redis-server is not the module's
            $r->redis_restart();
            $t_back = time;
            $r->redis_cli('HSET', 'cg:quotas', 'default',
                          'quota=10000000/h',
                          map { ("c$_", 'quota=10000000/h') } 1 .. 4);
            $r->redis_cli('SET', 'cg:version', 1);
        } else {
            $r->redis_resume();
            $t_back = time;
        }
        sleep $AFTER;
        my ($hgetall) = $r->redis_cli('INFO', 'commandstats')
            =~ /cmdstat_hgetall:calls=(\d+)/;
        my $window = time - $t_down;
        kill 'KILL', @gen;
        waitpid($_, 0) for @gen;

        my @l = lines($file, 4);
        my (%down, %last_down, %seen, %bad, $errors);
        for my $l (@l) {
            my ($at, $node, $pid, $status, $how) = @$l;
            my $w = "node $node worker $pid";
            $errors++ if $status == 599;
            $bad{"$status $how"}++ if $status >= 500
                && !($policy eq 'closed' && $how eq 'DOWN_CLOSED'
                     && $status == 503);
            next unless $at > $t_down;
            $seen{$w}++ if $at > $t_back;
            $down{$w}++ if $how =~ /^DOWN_/;
            $last_down{$w} = $at if $how =~ /^DOWN_/ && $at > $t_back;
        }

        ok(!$errors, "$policy, $event: no connection errors")
            or diag("$errors");
        ok(!%bad, "$policy, $event: no 5xx from the module but the policy's")
            or diag(explain \%bad);
        ok(scalar(keys %down) >= 2, "$policy, $event: the policy decided "
           . 'while Redis was away') or diag(explain \%down);
        is(scalar(grep { /^node 0/ } keys %seen) >= 1
           && scalar(grep { /^node 1/ } keys %seen) >= 1, 1,
           "$policy, $event: traffic on both nodes after");

        my $worst = 0;
        for my $w (keys %seen) {
            my $took = defined $last_down{$w} ? $last_down{$w} - $t_back : 0;
            $worst = $took if $took > $worst;
        }
        ok($worst < $LIMIT, sprintf("$policy, $event: every worker decides "
           . "by Redis again within %.1f s of its return (worst %.3f s)",
           $LIMIT, $worst)) or diag(explain \%last_down);
        diag(sprintf("$policy, $event: recovery %.3f s", $worst))
            if $ENV{CG_VERBOSE};

        next unless $event eq 'stop';

        # the definitions did not change: a worker that reconnects reads
        # the version, not everything (each of the 4 workers read
        # everything on reconnection, 2 HGETALL, before); what is left is
        # the 5 s backstop of each worker, once per started 5 s of the
        # run (a worker with nothing in flight while Redis was stopped
        # never saw it go: its backstop kept its time).  In 4.5 s (the
        # run as built) that is 4, and a reload per reconnection fails it.
        my $calls = $hgetall // 0;
        my $most = 4 * (int($window / 5) + 1);
        ok($calls <= $most, "$policy, $event: no reload of the definitions "
           . "on reconnection ($calls HGETALL in " . sprintf('%.1f', $window)
           . " s, at most the backstop of each of the 4 workers: $most)");
    }

    $_->stop() for @nodes;
}

done_testing();
