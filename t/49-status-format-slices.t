#!/usr/bin/perl
# A large status answer is formatted in slices too, not in one go: with
# 6,000 clients in the zone and limit=10000, JSON, Prometheus and
# OpenMetrics answers are complete and well formed (JSON: every client;
# Prometheus: every line parses, each family in one block, "# EOF" last
# for OpenMetrics), and while one is being formatted, plain requests to
# the same (single) worker keep being answered: no wait between their
# answers takes a third of the time the status answer takes to come (in
# one go, the formatting took a half of it for JSON, 80% for Prometheus).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);
use CG;

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'z:16m',
    quotas => ['default rate=100r/s burst=50 quota=1000/h'],
    status => 1,
    locations => <<'EOF'), access_log => 1);
    location = /ping {
        client_guard off;
        return 204;
    }
EOF
$t->start();

my $N = $ENV{CG_N} || 6000;

# the clients, in pipelined batches of 500, a connection each (nginx
# closes a keep-alive connection after 1,000 requests)

my $answered = 0;

for (my $i = 0; $i < $N; $i += 500) {
    my $s = $t->connect();
    my $end = $i + 500 > $N ? $N : $i + 500;
    print $s join '', map { "GET / HTTP/1.1\r\nHost: x\r\n"
                            . "X-Client-Id: c-$_\r\n\r\n" } $i .. $end - 1;
    my ($buf, $n) = ('', 0);
    while ($n < $end - $i) {
        last unless sysread($s, my $chunk, 65536);
        $buf .= $chunk;
        $n = () = $buf =~ m{HTTP/1\.1 200 }g;
    }
    $answered += $n;
    close $s;
}

is($answered, $N, "traffic from $N clients");

sub parts {
    my ($resp) = @_;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    return ($head // '', $body // '');
}

# A status request, with plain requests one after the other on another
# connection meanwhile: the answer, the time to its first byte, and the
# longest wait for anything (a plain answer or the status) in between.
# With $leave, the status client goes away after that many plain answers.

sub status_with_pings {
    my ($q, $leave) = @_;
    my $st = $t->connect();
    my $pg = $t->connect();
    my $ping = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
    my ($resp, $pbuf, $pings, $first, $gap) = ('', '', 0, undef, 0);

    my $t0 = time;
    my $last = $t0;
    print $st "GET $q HTTP/1.0\r\nHost: x\r\n\r\n";
    print $pg $ping;

    my $sel = IO::Select->new($st, $pg);
    my $end = $t0 + 30;

    while ($sel->exists($st) && time < $end) {
        for my $h ($sel->can_read(1)) {
            my $n = sysread($h, my $chunk, 1 << 20);

            if ($h == $pg) {
                die "ping connection closed\n" unless $n;
                $pbuf .= $chunk;
                while ($pbuf =~ s{^HTTP/1\.1 204 .*?\r\n\r\n}{}s) {
                    my $now = time;
                    $gap = $now - $last if !defined $first
                                           && $now - $last > $gap;
                    $last = $now;
                    $pings++ unless defined $first;
                    print $pg $ping;
                }

                if ($leave && $pings >= $leave && !defined $first) {
                    $sel->remove($st);
                }

                next;
            }

            if (!$n) {
                $sel->remove($st);
                next;
            }

            if (!defined $first) {
                $first = time;
                $gap = $first - $last if $first - $last > $gap;
            }

            $resp .= $chunk;
        }
    }

    close $st;
    close $pg;

    return ($resp, ($first // time) - $t0, $gap, $pings);
}

my %body;

for my $f ('json', 'prometheus', 'openmetrics') {
    my $q = "/status?format=$f&limit=10000";
    my ($resp, $took, $gap, $pings);

    # in one go the formatting is most of the time to the first byte (a
    # half for JSON, 80% for Prometheus); in slices the longest wait is a
    # few per cent of it: the best of three tries, against a hiccup

    for (1 .. 3) {
        my @try = status_with_pings($q);
        ($resp, $took, $gap, $pings) = @try
            if !defined $resp || $try[2] / $try[1] < $gap / $took;
        last if $gap < $took / 4;
    }

    my ($head, $body) = parts($resp);
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;

    like($head, qr{^HTTP/1\.1 200}, "$f: 200");
    is(length $body, $len // -1, "$f: complete (Content-Length)");

    diag(sprintf("%s: %.1f MB, first byte after %.1f ms, %d plain "
                 . "answers meanwhile, longest wait %.1f ms",
                 $f, length($body) / 1e6, $took * 1000, $pings,
                 $gap * 1000));

    ok($pings > 0 && $gap < $took / 3,
       "$f: plain requests answered while the answer is formatted");

    $body{$f} = $body;
}

my $j = eval { decode_json($body{json}) };
ok($j, 'json: decodes');
is($j && $j->{clients_total}, $N, 'json: every client counted');
is($j && scalar @{ $j->{clients} }, $N, 'json: every client shown');
is_deeply([ sort map { $_->{name} } @{ $j ? $j->{clients} : [] } ],
          [ sort map { "c-$_" } 0 .. $N - 1 ], 'json: each client once');
is(scalar(grep { $_->{requests_total} != 1 } @{ $j ? $j->{clients} : [] }),
   0, 'json: each with its one request');
is(scalar(grep { scalar(@{ $_->{quota}{limits} // [] }) != 2 }
              @{ $j ? $j->{clients} : [] }),
   0, 'json: each with the two limits of its quota (views made in slices)');

# Prometheus and OpenMetrics: every line a comment or a sample, each
# family's lines together, every client in each per-client family

for my $f ('prometheus', 'openmetrics') {
    my @lines = split /\n/, $body{$f}, -1;
    my $eof = pop @lines;
    is($eof, '', "$f: ends with a newline");

    if ($f eq 'openmetrics') {
        is(pop @lines, '# EOF', "$f: # EOF last");
    }

    my (%done, %clients, $cur, @bad, @split);

    for my $l (@lines) {
        my $fam;

        if ($l =~ /^# (?:HELP|TYPE) (\w+) /) {
            $fam = $1;

        } elsif ($l =~ /^(\w+?)(?:_bucket|_sum|_count|_total)?
                         (?:\{((?:\w+="[^"\\]*",?)*)\})?
                         \x20-?[\d.]+(?:e[+-]?\d+)?$/x) {
            $fam = $1;
            my $labels = $2 // '';
            $clients{$fam}{$1} = 1 if $labels =~ /client="([^"]*)"/;

        } else {
            push @bad, $l;
            next;
        }

        $fam =~ s/_(?:bucket|sum|count|total)$//;

        if (!defined $cur || $cur ne $fam) {
            push @split, $fam if $done{$fam}++;
            $cur = $fam;
        }
    }

    is(scalar @bad, 0, "$f: every line parses") or diag("$f: $bad[0]");
    is(scalar @split, 0, "$f: each family in one block")
        or diag("$f: $split[0] comes twice");
    is(scalar(keys %{ $clients{clientguard_requests} || {} }), $N,
       "$f: every client in clientguard_requests_total");
    is(scalar(grep { scalar(keys %{ $clients{$_} }) != $N } keys %clients),
       0, "$f: every client in every per-client family");
}

# a client that goes away while its answer is formatted (past the 24
# slices of the copy and the sort): 499, the worker goes on as it was

my @pids = $t->worker_pids();
my (undef, undef, undef, $pings) =
    status_with_pings('/status?format=prometheus&limit=10000&sort=rate', 40);
ok($pings >= 40, 'a client gone while its answer is formatted');

ok($t->wait_until(sub {
    grep { m{ 499 "GET /status\?format=prometheus&limit=10000&sort=rate } }
         $t->access_log();
}, 5), 'gone: 499, the slices stopped');

my ($resp) = status_with_pings('/status?format=json&limit=10000');
my ($head, $body) = parts($resp);
my $k = eval { decode_json($body) };
is($k && scalar @{ $k->{clients} }, $N, 'after it, answers complete');
is_deeply([ $t->worker_pids() ], \@pids, 'the same worker');

# the worker is the one it was: no crash along the way

is(scalar(() = $t->error_log() =~ /signal|\[alert\]/g), 0,
   'no crash, no alert');

done_testing();
