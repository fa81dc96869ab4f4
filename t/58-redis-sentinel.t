#!/usr/bin/perl

# Redis behind Sentinel: a primary, a replica and 3 redis-sentinel processes;
# 2 nginx nodes (2 workers each) find the master through the sentinels.
# Quotas are enforced over both nodes before and after a failover; the
# master killed under traffic: no 5xx, requests for Redis get the failure
# policy within the command timeout, and the new master decides again
# within 1 s of +switch-master.  Then the misconfigurations: a master name
# the sentinels do not know, no sentinel reachable, a "master" that is a
# replica, parameters without sentinel=.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $SLOW = CG::slow();

my $r = CG->new();
my $mport = $r->redis_start();
my $rport = $r->redis_start(args => ['--replicaof', '127.0.0.1', $mport]);
my @sentinels = map { $r->sentinel_start($mport) } 1 .. 3;

ok(CG::wait_until(sub {
    for my $s (@sentinels) {
        return 0 unless $r->redis_cli({ port => $s }, 'SENTINEL', 'ckquorum',
                                      'mymaster') =~ /^OK 3 usable/;
        return 0 unless join(' ', $r->redis_cli({ port => $s }, 'SENTINEL',
            'replicas', 'mymaster')) =~ /\b$rport\b/;
    }
    return $r->redis_cli({ port => $rport }, 'INFO', 'replication')
        =~ /master_link_status:up/;
}, 30 * $SLOW), 'sentinels see the master, the replica and each other');

my $Q = 100;
$r->redis_cli('HSET', 'cg:quotas', 'before', "quota=$Q/h", 'after',
              "quota=$Q/h", 'load', 'quota=10000000/h');
$r->redis_cli('INCR', 'cg:version');
$r->redis_cli('WAIT', '1', '2000');

my $addrs = join ' ', map { "127.0.0.1:$_" } @sentinels;

my @nodes;
for (1 .. 2) {
    my $t = CG->new(redis_port => $mport);
    $t->write_conf(CG::http(
        quotas => ['default quota=10/h'],
        redis => "$addrs sentinel=mymaster",
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'empty_gif;'), workers => 2);
    $t->start();
    push @nodes, $t;
}

sub redis_word {
    my ($t, $client) = @_;
    return $t->get('/', { 'X-Client-Id' => $client })->{headers}{'x-redis'}
        // '';
}

for my $t (@nodes) {
    ok(CG::wait_until(sub { redis_word($t, 'probe') eq 'LEASE' }, 5 * $SLOW),
       'node uses the master found by the sentinels');
    like($t->error_log,
         qr/sentinel 127\.0\.0\.1:\d+: master "mymaster" is at 127\.0\.0\.1:$mport/,
         'the log says where the master is');
}

# fan_out(sub { ... return { key => count } }): 2 processes per node at once

sub fan_out {
    my ($work) = @_;
    my @kids;
    for my $t (@nodes) {
        for my $k (1 .. 2) {
            pipe(my $rd, my $wr);
            my $pid = fork;
            if ($pid == 0) {
                close $rd;
                my $c = $work->($t, $k);
                print $wr join(',', map { "$_=$c->{$_}" } keys %$c);
                close $wr;
                POSIX::_exit(0);
            }
            close $wr;
            push @kids, [$pid, $rd];
        }
    }
    my %total;
    for my $k (@kids) {
        my $line = do { local $/; readline $k->[1] } // '';
        waitpid($k->[0], 0);
        $total{$1} += $2 while $line =~ /([\w.]+)=(\d+)/g;
    }
    return \%total;
}

sub quota_over_nodes {
    my ($client) = @_;
    CG::window_clear(3600, 20);     # counted in one hour's window
    my $total = fan_out(sub {
        $_[0]->statuses($Q / 2, '/', { 'X-Client-Id' => $client });
    });
    my $ok = ($total->{200} // 0) >= $Q && ($total->{200} // 0) <= $Q + 2;
    ok($ok, "quota $Q/h over 2 nodes at 2x: " . ($total->{200} // 0)
       . ' admitted') or diag(explain $total);
}

quota_over_nodes('before');

# --- a failover under traffic -----------------------------------------------

my $dir = $r->dir;

# the test's own subscriber, on every sentinel: when the first
# +switch-master came

my $spid = fork;
if ($spid == 0) {
    my $sel = IO::Select->new();
    for my $p (@sentinels) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p")
            or POSIX::_exit(1);
        print $s "SUBSCRIBE +switch-master\r\n";
        $sel->add($s);
    }
    my %buf;
    while (my @ready = $sel->can_read) {
        my $s = $ready[0];
        sysread($s, $buf{$s}, 4096, length($buf{$s} // '')) or last;
        if ($buf{$s} =~ /^(mymaster [^\r]*)\r$/m) {
            open(my $fh, '>', "$dir/switch.tmp");
            printf $fh "%.6f %s", time, $1;
            close $fh;
            rename "$dir/switch.tmp", "$dir/switch";
            last;
        }
    }
    POSIX::_exit(0);
}
sleep 0.3;

my @load;
for my $n (0 .. $#nodes) {
    for my $k (1 .. 2) {
        my $pid = fork;
        if ($pid == 0) {
            my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
            my $url = 'http://127.0.0.1:' . $nodes[$n]->port(0) . '/';
            open(my $fh, '>', "$dir/load-$n-$k") or POSIX::_exit(1);
            while (!-e "$dir/stop") {
                my $t0 = time;
                my $res = $http->get($url,
                    { headers => { 'X-Client-Id' => 'load' } });
                printf $fh "%.6f %.6f %d %s\n", $t0, time - $t0,
                    $res->{status}, $res->{headers}{'x-redis'} // '-';
                sleep 0.005;
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @load, [$pid, $n];
    }
}

sleep 1;
my $killed = time;
kill 'KILL', $r->{redis}[0]{pid};
waitpid($r->{redis}[0]{pid}, 0);
delete $r->{redis}[0]{pid};

ok(CG::wait_until(sub { -e "$dir/switch" }, 30 * $SLOW),
   'the sentinels fail over');
sleep 3;
open(my $stop, '>', "$dir/stop");
close $stop;
waitpid($_->[0], 0) for @load;
kill 'KILL', $spid;
waitpid($spid, 0);

my ($switched, $line) = split / /,
    do { open(my $fh, '<', "$dir/switch"); local $/; <$fh> // '' }, 2;
$switched //= 0;
like($line // '', qr/^mymaster 127\.0\.0\.1 $mport 127\.0\.0\.1 $rport/,
     '+switch-master names the replica');
diag(sprintf('failover: +switch-master %.2f s after the kill',
             $switched - $killed));

my (%status, %down, $max, $slowest, @first);
for my $n (0 .. $#nodes) {
    for my $k (1 .. 2) {
        open(my $fh, '<', "$dir/load-$n-$k") or next;
        while (<$fh>) {
            my ($t0, $took, $st, $word) = split;
            $status{$st}++;
            # the failover's requests (the start of the load is the
            # machine's, forking the clients)
            if ($t0 > $killed && (!defined $max || $took > $max)) {
                $max = $took;
                $slowest = sprintf('%s, %.2f s after the kill', $word,
                                   $t0 - $killed);
            }
            $down{$n}++ if $word =~ /^DOWN_/ && $t0 > $killed;
            if ($word =~ /^(?:LEASE|WAITED|AHEAD)$/ && $t0 > $switched
                && (!defined $first[$n] || $t0 < $first[$n]))
            {
                $first[$n] = $t0;
            }
        }
    }
}

is(join(',', grep { $_ >= 500 } keys %status), '', 'no 5xx under failover')
    or diag(explain \%status);
ok(($status{200} // 0) > 100, "traffic all along ($status{200} answered)");
for my $n (0 .. $#nodes) {
    ok($down{$n}, "node $n: requests while the master was gone got the "
       . 'failure policy (' . ($down{$n} // 0) . ')');
    ok(defined $first[$n] && $first[$n] - $switched <= 1,
       sprintf('node %d: the new master decides %.3f s after '
               . '+switch-master', $n, ($first[$n] // 99) - $switched));
}
ok($max <= 0.1 + 0.4 * $SLOW, sprintf('slowest request since the kill %.3f s '
   . '(%s; command timeout 100 ms)', $max, $slowest));

for my $t (@nodes) {
    like($t->error_log, qr/master "mymaster" is at 127\.0\.0\.1:$rport/,
         'the log says the master moved');
}

quota_over_nodes('after');

# a reload: the new workers find the new master

sub found_new {
    my @at = ($nodes[0]->error_log // '')
        =~ /master "mymaster" is at 127\.0\.0\.1:$rport/g;
    return scalar @at;
}
my $found = found_new();
$nodes[0]->reload();
ok(CG::wait_until(sub {
    return found_new() > $found && redis_word($nodes[0], 'probe') eq 'LEASE';
}, 5 * $SLOW), 'after a reload: the new master, asked again');

# --- misconfigurations ------------------------------------------------------

my $u = CG->new(redis_port => $rport);
$u->write_conf(CG::http(quotas => ['default quota=10/h'],
    redis => "$addrs sentinel=nosuch",
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'));
$u->start();
ok($u->wait_for_log(qr/sentinel 127\.0\.0\.1:\d+ does not know master "nosuch"/),
   'unknown master name: the log says so');
is(redis_word($u, 'x'), 'DOWN_LOCAL', 'unknown master: the failure policy');
$u->stop();

my $n = CG->new(redis_port => $rport);
my $none = join ' ', map { '127.0.0.1:' . $n->port($_) } 1 .. 3;
$n->write_conf(CG::http(quotas => ['default quota=10/h'],
    redis => "$none sentinel=mymaster",
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'));
$n->start();
ok($n->wait_for_log(qr/no sentinel of master "mymaster" answers \(3 tried/),
   'no sentinel reachable: the log says so');
is(redis_word($n, 'x'), 'DOWN_LOCAL', 'no sentinel: the failure policy');
$n->stop();

# a sentinel that names a replica: the link checks ROLE and will not use it
# (a real sentinel told to monitor a replica as "mymaster" names it so)

my $rep = $r->redis_start(args => ['--replicaof', '127.0.0.1', $rport]);
my $f = CG->new(redis_port => $rport);
my $fport = $r->sentinel_start($rep);
$f->write_conf(CG::http(quotas => ['default quota=10/h'],
    redis => "127.0.0.1:$fport sentinel=mymaster",
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'));
$f->start();
ok($f->wait_for_log(qr/redis 127\.0\.0\.1:$rep is not the master of "mymaster" but a "slave"/),
   'a replica named as the master: ROLE says so, in the log');
is(redis_word($f, 'x'), 'DOWN_LOCAL', 'a replica: the failure policy');
$f->stop();

# a plain Redis named as a sentinel

my $p = CG->new(redis_port => $rport);
$p->write_conf(CG::http(quotas => ['default quota=10/h'],
    redis => "127.0.0.1:$rport sentinel=mymaster",
    location => 'add_header X-Redis $client_guard_redis always; empty_gif;'));
$p->start();
ok($p->wait_for_log(qr/127\.0\.0\.1:$rport is no sentinel of master "mymaster": SENTINEL get-master-addr-by-name answered ERR/),
   'a Redis that is no sentinel: the log says so');
is(redis_word($p, 'x'), 'DOWN_LOCAL', 'no sentinel: the failure policy');
$p->stop();

# a sentinel with a password: sentinel_password=, or a clear refusal

my $sp = $r->sentinel_start($rport, password => 's3ntinel');
for my $pass ('', 's3ntinel') {
    my $a = CG->new(redis_port => $rport);
    $a->write_conf(CG::http(quotas => ['default quota=10/h'],
        redis => "127.0.0.1:$sp sentinel=mymaster"
            . ($pass ? " sentinel_password=$pass" : ''),
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'empty_gif;'));
    $a->start();
    if ($pass) {
        ok(CG::wait_until(sub { redis_word($a, 'x') eq 'LEASE' }, 5 * $SLOW),
           'sentinel_password=: the master found through that sentinel');
    } else {
        ok($a->wait_for_log(qr/redis 127\.0\.0\.1:$sp is down: the handshake was refused: HELLO: NOAUTH/),
           'a sentinel that wants a password: the log says so');
        is(redis_word($a, 'x'), 'DOWN_LOCAL', 'and the failure policy');
    }
    $a->stop();
}

my $c = CG->new();
my ($rc, $out) = $c->nginx_test_conf(CG::http(
    redis => '127.0.0.1:1 sentinel_password=x'));
ok($rc && $out =~ /"client_guard_redis" directive has "sentinel_user=" or "sentinel_password=" without "sentinel="/,
   'sentinel_password= without sentinel=: nginx -t says so') or diag($out);

$_->stop() for @nodes;
done_testing();
