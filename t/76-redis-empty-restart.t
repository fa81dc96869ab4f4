#!/usr/bin/perl

# A Redis that comes back empty (no persistence: the harness starts it with
# --save "" --appendonly no), 4 times under traffic through 2 nginx nodes of
# 2 workers each.  The quotas and the API key, defined only in Redis, stay
# in force throughout (a client above its quota is held to it: the
# configuration's default would let it through), are back in Redis within
# a second of each restart (restored by one node, logged once at error),
# and no client under its quota ever gets a 429.  The status says so.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX qw(_exit);

my $RESTARTS = 4;

my $r = CG->new();
my $rport = $r->redis_start();

sub define {
    $r->redis_cli('HSET', 'cg:quotas', 'over', 'rate=10r/s burst=5',
                  'keyed', 'rate=50r/s burst=50', 'under', 'quota=100000/h',
                  'small', 'rate=16r/s burst=4');
    $r->redis_cli('HSET', 'cg:apikeys', sha256_hex('k-1'), 'keyed');
    $r->redis_cli('SET', 'cg:version', 7);
}
define();

my @nodes;
for (0 .. 1) {
    my $t = CG->new(redis_port => $rport);
    $t->write_conf(CG::http(
        quotas => ['default quota=10000000/h'],
        redis => 'timeout=100ms connect_timeout=100ms',
        identify => 'client_guard_identify_api_key $http_x_api_key;
                     client_guard_identify $http_x_client_id;',
        status => 1,
        location => 'add_header X-Redis $client_guard_redis always; '
            . 'add_header X-Client $client_guard_client always; empty_gif;'),
        workers => 2, error_log_level => 'error');
    $t->start();
    push @nodes, $t;
}
my @ports = map { $_->port(0) } @nodes;

ok(CG::wait_until(sub {
    ($nodes[1]->get('/', { 'X-Api-Key' => 'k-1' })->{headers}{'x-client'}
     // '') eq 'keyed' }, 5), 'the API key from Redis identifies its client');

# one process per client and node, $rate requests/s, a connection each
# (both workers get some); a line per request: time client status how
sub client {
    my ($file, $port, $rate, %h) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    return $pid if $pid;
    open(my $out, '>>', $file) or _exit(1);
    $out->autoflush(1);
    my $head = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    my $next = time;
    while (1) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                      Timeout => 5);
        my ($status, $how, $who) = (599, '-', '-');
        if ($s) {
            print $s "GET / HTTP/1.0\r\n$head\r\n";
            my $resp = do { local $/; <$s> } // '';
            $status = $1 if $resp =~ m{^HTTP/1\.\d (\d+)};
            $how = $1 if $resp =~ /^X-Redis: (\S+)/mi;
            $who = $1 if $resp =~ /^X-Client: (\S+)/mi;
        }
        printf $out "%.4f %s %d %s\n", time, $who, $status, $how;
        $next += 1 / $rate;
        my $wait = $next - time;
        sleep $wait if $wait > 0;
    }
}

my $log = $r->dir . '/traffic';
my @gen;
for my $port (@ports) {
    push @gen, client("$log.over.$port", $port, 25, 'X-Client-Id' => 'over');
    push @gen, client("$log.under.$port", $port, 5, 'X-Client-Id' => 'under');
    push @gen, client("$log.small.$port", $port, 4, 'X-Client-Id' => 'small');
    push @gen, client("$log.keyed.$port", $port, 5, 'X-Api-Key' => 'k-1');
}

my $t0 = time;
sleep 1.5;

# from here on: the leases of clients new to a node have grown (how they
# grow at a node's start is not what this test is about)
my $t_events = time;

my @back;
for my $i (1 .. $RESTARTS) {
    $r->redis_cli('SET', 'cg-test:marker', 1);
    $r->redis_restart();
    my $up = time;
    is($r->redis_cli('EXISTS', 'cg-test:marker'), 0,
       "restart $i: Redis came back empty");
    ok(CG::wait_until(sub {
        $r->redis_cli('HGET', 'cg:quotas', 'over') eq 'rate=10r/s burst=5'
            && $r->redis_cli('GET', 'cg:version') eq '7'
            && $r->redis_cli('HGET', 'cg:apikeys', sha256_hex('k-1'))
               eq 'keyed' }, 3, 0.02),
       "restart $i: quotas, API key and version are back in Redis");
    push @back, time - $up;
    sleep 2;
}
my $t1 = time;
kill 'KILL', @gen;
waitpid($_, 0) for @gen;

diag(sprintf('restored within %s s', join(', ', map { sprintf '%.2f', $_ }
     @back))) if $ENV{CG_VERBOSE};
# a reconnection (640 ms at most), the definitions read, the lock, the
# writes: a loaded test machine may stretch it past a second
ok((grep { $_ < 2 * CG::slow() } @back) == @back,
   'each time restored within 2 s of Redis being up: '
   . join(', ', map { sprintf '%.2f', $_ } @back));

my (%n, %c);
for my $f (glob "$log.*") {
    my ($who) = $f =~ /traffic\.(\w+)\./;
    open(my $fh, '<', $f) or next;
    for (<$fh>) {
        my ($at, $client, $status, $how) = split;
        next if $who ne 'over' && $at < $t_events;
        $n{$who}{$status}++;
        $c{$who}{$client}++;
        push @{$n{"$who at"}}, $at if $status == 200;
    }
}

# over: 50 r/s offered to a 10 r/s quota; the configuration's default would
# admit them all.  Each empty restart forgets the rate's state (a burst
# more), and the local policy may admit a node's share during the outage.
my $secs = $t1 - $t0;
my $ok = $n{over}{200} // 0;
my $bound = 10 * $secs + 10 * ($RESTARTS + 1) + 10 * $RESTARTS + 10;
ok($ok > 5 * $secs && $ok < $bound, sprintf('over: the Redis quota held '
   . 'throughout: %d admitted in %.1f s (bound %d, %d offered)', $ok, $secs,
   $bound, ($n{over}{200} // 0) + ($n{over}{429} // 0)));

# and in every second of it
my %per;
$per{int($_ - $t0)}++ for @{$n{'over at'} || []};
my ($worst) = sort { $b <=> $a } values %per;
ok($worst <= 30, "over: at most $worst admitted in any second");

is_deeply($n{under}, { 200 => $n{under}{200} },
          'under: never rejected (a quota far from reached)')
    or diag(explain $n{under});
is_deeply($n{small}, { 200 => $n{small}{200} },
          'small: under its rate (a small burst), never rejected')
    or diag(explain $n{small});
is_deeply($n{keyed}, { 200 => $n{keyed}{200} },
          'keyed: never rejected') or diag(explain $n{keyed});
is_deeply([ keys %{$c{keyed}} ], [ 'keyed' ],
          'keyed: the API key identified its client throughout')
    or diag(explain $c{keyed});

# one line per restart, from one worker of one node, at error
my @lines = map { $_->error_log =~
    /\[error\].*(client guard: redis \S+ came back without the quota .*)/g }
    @nodes;
is(scalar @lines, $RESTARTS, 'one error line per empty restart')
    or diag(join "\n", @lines);
my $what = "restored 4 quotas and 1 API key from this node's last snapshot";
like($lines[0] // '', qr/\Q$what\E \(version 7\)/,
     'the line says what was restored');

# the status: a worker of each node saw it; JSON and Prometheus
my ($lost, $restored) = (0, 0);
for my $t (@nodes) {
    for (1 .. 6) {
        my $j = $t->get('/status?format=json')->{content};
        $lost++ if $j =~ /"definitions_lost":[1-9]/;
        $restored++ if $j =~ /"last_restore":\{"at":\d+,"by":"node-\d+\/\d+"/;
    }
}
ok($lost && $restored, "status JSON: definitions_lost and last_restore "
   . "($lost, $restored)");
my $prom = join '', map { $_->get('/status?format=prometheus')->{content} }
    @nodes;
like($prom, qr/^clientguard_redis_definitions_lost_total \d+/m,
     'Prometheus: clientguard_redis_definitions_lost_total');
like($prom, qr/^clientguard_redis_definitions_restored_total \d+/m,
     'Prometheus: clientguard_redis_definitions_restored_total');

# an operator's change made while Redis was empty is not overwritten: the
# workers are stopped (no reconnection) while Redis restarts and the
# operator writes, then go on
my @workers = map { $_->worker_pids } @nodes;
kill 'STOP', @workers;
$r->redis_restart();
$r->redis_cli('HSET', 'cg:quotas', 'under', 'quota=5/h');
kill 'CONT', @workers;
ok(CG::wait_until(sub { $r->redis_cli('GET', 'cg:version') eq '7' }, 3),
   'restored again');
is($r->redis_cli('HGET', 'cg:quotas', 'under'), 'quota=5/h',
   'a field written meanwhile is kept (HSETNX)');
is($r->redis_cli('HGET', 'cg:quotas', 'over'), 'rate=10r/s burst=5',
   'the others are restored');
ok(CG::wait_until(sub { join('', map { $_->error_log } @nodes)
    =~ /restored 3 quotas and 1 API key .*, kept 1 written there meanwhile/ },
    3), 'the line says what was kept');

$_->stop() for @nodes;

done_testing();
