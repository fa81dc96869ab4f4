#!/usr/bin/perl
# A status request with more clients than one batch (256) is answered in
# slices across turns of the event loop, each request with its own memory.
# With 1,200 clients (five batches): five requests at once, each in
# another format, all get complete answers, the same as asked one at a
# time; HEAD and a subrequest (SSI) too; clients that close the connection
# before or while the answer comes leave the worker as it was (same pid,
# no alert, later answers right).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use IO::Select;
use JSON::PP;
use CG;

my $t = CG->new();

$t->write_conf(CG::http(zone => 'z:4m', status => 1,
                        locations => <<'EOF'), access_log => 1);
    location /page {
        client_guard off;
        ssi on;
        default_type text/html;
        return 200 '[<!--# include virtual="/status?limit=3&sort=name" -->]';
    }
EOF
$t->start();

my $N = 1200;
my $http = HTTP::Tiny->new(agent => 'cg-test', timeout => 10);
my $port = $t->port(0);
my $failed = 0;

for my $i (0 .. $N - 1) {
    for (1 .. 1 + $i % 3) {
        my $r = $http->get("http://127.0.0.1:$port/",
                           { headers => { 'X-Client-Id' => "c-$i" } });
        $failed++ unless $r->{status} == 200;
    }
}

is($failed, 0, "traffic from $N clients");

my @pids = $t->worker_pids();

# the stable part of an answer: the counters (rates and times move)

sub stable {
    my ($q, $body) = @_;
    return undef unless defined $body;
    if ($q =~ /json/) {
        my $j = eval { decode_json($body) } or return undef;
        return [ $j->{clients_total}, $j->{clients_shown},
                 map { [ $_->{name}, $_->{requests_total} ] }
                 @{ $j->{clients} } ];
    }
    return [ grep { /^clientguard_(?:requests_total|clients)[{ ]/ || /^# EOF/ }
             split /\n/, $body ];
}

# raw requests, written on every connection before any answer is read

sub raw {
    my (@reqs) = @_;
    my (@socks, %buf);
    for my $req (@reqs) {
        my $s = $t->connect();
        print $s $req;
        push @socks, $s;
    }
    my $sel = IO::Select->new(@socks);
    my $end = time + 15;
    while ($sel->count && time < $end) {
        for my $s ($sel->can_read(1)) {
            my $n = sysread($s, my $chunk, 65536);
            if (!$n) { $sel->remove($s); close $s; next; }
            $buf{"$s"} .= $chunk;
        }
    }
    return map { $buf{"$_"} // "" } @socks;
}

sub body {
    my ($resp) = @_;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    return ($head // '', $body);
}

my @q = ('/status?format=json&limit=1000',
         '/status?format=prometheus&limit=500',
         '/status?format=openmetrics&limit=50',
         '/status?format=json&sort=name&limit=10000',
         '/status?format=prometheus');

my @resp = raw(map { "GET $_ HTTP/1.0\r\nHost: x\r\n\r\n" } @q);

for my $i (0 .. $#q) {
    my ($head, $body) = body($resp[$i]);
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;
    like($head, qr{^HTTP/1\.1 200}, "at once: $q[$i]: 200");
    is(length($body // ''), $len // -1, "at once: $q[$i]: complete");

    my $alone = $http->get("http://127.0.0.1:$port$q[$i]");
    my $got = stable($q[$i], $body);
    ok($got && @$got > 1, "at once: $q[$i]: parsed");
    is_deeply($got, stable($q[$i], $alone->{content}),
              "at once: $q[$i]: as asked alone");
}

my ($j) = map { decode_json((body($_))[1]) } $resp[3];
is($j->{clients_total}, $N, 'sort=name: every client counted');
is(scalar @{ $j->{clients} }, $N, 'sort=name: every client shown');
is_deeply([ map { $_->{name} } @{ $j->{clients} } ],
          [ sort map { "c-$_" } 0 .. $N - 1 ], 'sort=name: in order');
is_deeply({ map { $_->{name} => $_->{requests_total} } @{ $j->{clients} } },
          { map { ("c-$_" => 1 + $_ % 3) } 0 .. $N - 1 },
          'sort=name: each with its own count');

my ($p) = (body($resp[1]))[1];
is(scalar(() = $p =~ /^clientguard_requests_total\{/mg), 500,
   'prometheus: 500 clients');
like((body($resp[2]))[1], qr/\n# EOF\n\z/, 'openmetrics: ends with # EOF');

# HEAD: the headers of the same answer, no body

my ($head) = raw("HEAD /status?format=json&limit=10000 HTTP/1.0\r\n"
                 . "Host: x\r\n\r\n");
my ($hlen) = $head =~ /^Content-Length: (\d+)/mi;
like($head, qr{^HTTP/1\.1 200}, 'HEAD: 200');
ok($hlen && $hlen > 100_000, 'HEAD: the length of the whole answer');
like($head, qr/\r\n\r\n\z/, 'HEAD: no body');

# a subrequest (SSI)

my $r = $http->get("http://127.0.0.1:$port/page");
is($r->{status}, 200, 'subrequest: 200');
like($r->{content}, qr/^\[\{.*"clients_total":$N,.*\}\n?\]\z/s,
     'subrequest: the answer included whole');

# clients that go away: before the answer, and in the middle of it

for my $i (1 .. 5) {
    my $s = $t->connect();
    print $s "GET /status?format=prometheus&limit=10000 HTTP/1.0\r\n"
             . "Host: x\r\n\r\n";
    close $s;
}

for my $i (1 .. 5) {
    my $s = $t->connect();
    print $s "GET /status?format=json&limit=10000 HTTP/1.0\r\n"
             . "Host: x\r\n\r\n";
    sysread($s, my $buf, 1000);
    close $s;
}

select(undef, undef, undef, 0.5);

$r = $http->get("http://127.0.0.1:$port/status?format=json&limit=10000");
is($r->{status}, 200, 'after clients went away: 200');
is(scalar @{ decode_json($r->{content})->{clients} }, $N,
   'after clients went away: complete');
is_deeply([ $t->worker_pids() ], \@pids, 'the same worker');
ok(scalar(grep { / 499 "GET \/status\?format=prometheus/ } $t->access_log()),
   'a client gone before its answer: 499, the slices stopped');

$t->stop();

done_testing();
