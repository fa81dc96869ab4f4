#!/usr/bin/perl

# Redis failing in ways nginx must survive, all with a real redis-server
# (faults around it by t/lib/FaultProxy.pm, none imitating it): an endpoint
# that never answers, one that closes at once, replies in fragments, the
# script flushed (NOSCRIPT) before every request, EVALSHA refused, and a
# client that goes away while its request waits for a lease that hangs.

use strict;
use warnings;

use lib 't/lib';
use CG;
use FaultProxy;
use Test::More;
use Time::HiRes qw(time sleep);

my $MARGIN = 0.7 * CG::slow();    # a loaded machine stalls now and then

sub conf {
    my ($extra) = @_;
    return CG::http(quotas => ['default quota=3/h'],
                    redis => "127.0.0.1:%%PORT1%% $extra",
                    location => <<'EOF');
    add_header X-Redis $client_guard_redis always;
    add_header X-Status $client_guard_status always;
    empty_gif;
EOF
}

sub slurp { open(my $f, '<', $_[0]) or return ''; local $/; <$f> }

# --- never answers: decided at once by the policy; QUIT is not held up -----

for my $mode ('silent', 'close') {
    my $t = CG->new();
    $t->fake_server($t->port(1), FaultProxy::handler(mode => $mode));
    $t->write_conf(conf('timeout=100ms connect_timeout=100ms'), workers => 2);
    $t->start();
    sleep 0.3;

    my ($worst, %codes, %how) = (0);
    for (1 .. 5) {
        my $t0 = time;
        my $r = $t->get('/', { 'X-Client-Id' => 'a' });
        my $took = time - $t0;
        $worst = $took if $took > $worst;
        $codes{$r->{status}}++;
        $how{$r->{headers}{'x-redis'} // ''}++;
    }
    ok($worst < 0.1 + $MARGIN, sprintf("$mode: answered within timeout + "
       . "margin (worst %.3f s)", $worst));
    is_deeply(\%codes, { 200 => 3, 429 => 2 },
              "$mode: the configured quota applies locally");
    is_deeply(\%how, { DOWN_LOCAL => 5 }, "$mode: \$client_guard_redis");

    my $took = $t->stop();
    ok($took < 2, sprintf("$mode: QUIT exits promptly (%.2f s)", $took));
}

# Redis's INFO field "name:value" (errorstat_NOSCRIPT:count, ...), 0 if none
sub info {
    my ($t, $section, $name, $field) = @_;
    my ($v) = $t->redis_cli('INFO', $section)
        =~ /^\Q$name\E:(?:.*?\b)?\Q$field\E=(\d+)/m;
    return $v // 0;
}

# --- answers in fragments: the reader reassembles every reply --------------

{
    my $t = CG->new();
    my $log = $t->dir . '/commands.log';
    $t->redis_start();
    $t->redis_cli('HSET', 'cg:quotas', 'frag', 'mode=off', 'b', 'quota=20/h');
    $t->fake_server($t->port(1), FaultProxy::handler(
        redis => $t->redis_port, fragments => 1, log => $log));
    $t->write_conf(conf('timeout=500ms'));
    $t->start();

    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'a' })->{headers}{'x-redis'} // '')
            =~ /LEASE|WAITED/ }, 5), 'fragments: leases granted');
    ok(CG::wait_until(sub {
        ($t->get('/', { 'X-Client-Id' => 'frag' })->{headers}{'x-status'} // '')
            eq 'BYPASSED' }, 3), 'fragments: HGETALL parsed (mode=off)');
    my $c = $t->statuses(21, '/', { 'X-Client-Id' => 'b' });
    is_deeply($c, { 200 => 20, 429 => 1 }, 'fragments: lease replies parsed '
       . '(b\'s quota of 20/h from Redis, to the unit)');
    like(slurp($log), qr/SUBSCRIBE/, 'fragments: subscriber connected');
    $t->stop();
}

# --- NOSCRIPT: the script is sent with EVAL, once per lease ---------------

{
    my $t = CG->new();
    my $log = $t->dir . '/commands.log';
    $t->redis_start();
    # "n" is near its limit from the start: leases of 1, a fetch a request
    $t->redis_cli('HSET', 'cg:quotas', 'n', 'quota=5/h');
    $t->fake_server($t->port(1), FaultProxy::handler(
        redis => $t->redis_port, log => $log));
    $t->write_conf(conf(''));
    $t->start();
    # the worker loads the script when its link is up: flushed after that,
    # and again before every request, a lease finds it gone each time
    CG::wait_until(sub {
        info($t, 'commandstats', 'cmdstat_script|load', 'calls') },
        5 * CG::slow());
    my $flush = sub { $t->redis_cli('SCRIPT', 'FLUSH') };

    ok(CG::wait_until(sub {
        $flush->();
        ($t->get('/', { 'X-Client-Id' => 'a' })->{headers}{'x-redis'} // '')
            =~ /LEASE|WAITED/ }, 5), 'NOSCRIPT: lease granted after EVAL');
    my %c;
    for (1 .. 6) {
        $flush->();
        $c{$t->get('/', { 'X-Client-Id' => 'n' })->{status}}++;
    }
    is_deeply(\%c, { 200 => 5, 429 => 1 },
              'NOSCRIPT: requests admitted, each charged once (quota 5/h)');
    my @cmds = grep { /^EVAL/ } split /\n/, slurp($log);
    ok(@cmds >= 2 && $cmds[0] eq 'EVALSHA' && $cmds[1] eq 'EVAL',
       'NOSCRIPT: EVALSHA, then EVAL');
    # a lease fetch may still be under way: let it finish
    my ($noscript, $eval);
    CG::wait_until(sub {
        $noscript = info($t, 'errorstats', 'errorstat_NOSCRIPT', 'count');
        $eval = info($t, 'commandstats', 'cmdstat_eval', 'calls');
        return $noscript == $eval;
    }, 10 * CG::slow());
    # (and found gone each time: a flush before each of "n"'s requests)
    ok($noscript >= 3 && $eval == $noscript, 'NOSCRIPT: retried once per '
       . "lease, not more ($noscript NOSCRIPT, $eval EVAL)");
    $t->stop();
}

# --- the lease script fails: the breaker opens, the policy decides --------

{
    my $t = CG->new();
    # the server's ACL refuses the lease script: EVALSHA and EVAL answer
    # NOPERM, the call fails as a whole
    $t->redis_start(port => $t->port(1));
    $t->redis_cli('ACL', 'SETUSER', 'default', '-evalsha', '-eval');
    $t->write_conf(conf(''));
    $t->start();
    sleep 0.3;

    my ($worst, %how) = (0);
    my $first = time;
    for (1 .. 20) {
        my $t0 = time;
        my $r = $t->get('/', { 'X-Client-Id' => 'e' });
        $worst = time - $t0 if time - $t0 > $worst;
        $how{$r->{headers}{'x-redis'} // ''}++;
    }
    my $took = time - $first;
    is($how{DOWN_LOCAL}, 20, 'script error: decided by the failure policy');
    ok($worst < 0.1 + $MARGIN, sprintf('script error: promptly (worst '
       . '%.3f s)', $worst));
    # a line a second at most: one at the first failure, then one for each
    # full second the 20 requests took (2 on a quiet machine: 0.2 s; a
    # loaded one takes longer), and the breaker's retries are no more
    my $n = () = $t->error_log =~ /unexpected lease reply/g;
    my $most = 2 + int($took);
    ok($n >= 1 && $n <= $most, sprintf('script error: logged, not per '
       . 'request (%d lines in %.1f s, at most %d)', $n, $took, $most));
    $t->stop();
}

# --- a client goes away while its request waits for a lease ---------------

{
    my $t = CG->new();
    $t->redis_start();
    $t->fake_server($t->port(1), FaultProxy::handler(
        redis => $t->redis_port, hang => 'EVALSHA'));
    $t->write_conf(conf('timeout=1s'), access_log => 1);
    $t->start();
    ok($t->wait_for_link, 'gone: the link is up (the lease fetch will hang)');

    my @socks;
    for my $i (1 .. 3) {
        my $s = $t->connect();
        print $s "GET / HTTP/1.1\r\nHost: x\r\nX-Client-Id: gone\r\n\r\n";
        push @socks, $s;
    }
    sleep 0.2;
    close $_ for @socks;

    # the waits would end after 1 s: the cleanup detaches them earlier
    ok(CG::wait_until(sub { ($t->access_log =~ tr/\n//) >= 3 }, 0.5, 0.02),
       'requests of clients that went away end at once, not at the timeout');
    like($t->access_log, qr/ gone \S+ 499 /, 'logged as 499 (client closed)');

    # the link is dropped by the watchdog, later requests decide at once
    sleep 1;
    my $t0 = time;
    my $r = $t->get('/', { 'X-Client-Id' => 'after' });
    is($r->{status}, 200, 'nginx serves after the disconnects');
    ok(time - $t0 < 1 + $MARGIN, 'and within the timeout');
    $t->stop();
}

done_testing();
