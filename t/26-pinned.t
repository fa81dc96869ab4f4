#!/usr/bin/perl
# A client's record is pinned while one of its requests is under way: a full
# zone evicts other clients instead, and the finished request is counted in
# the record it started with.  Logged subrequests are not counted again.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use CG;

my $t = CG->new();

# a backend that answers after a second
$t->fake_server($t->port(1), sub {
    my ($s) = @_;
    local $/ = "\r\n\r\n";
    my $req = <$s>;
    sleep 1;
    print $s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
});

$t->write_conf(CG::http(
    zone => 'z:1m clients=2',
    quotas => ['default rate=100r/s burst=100'],
    status => 'zone=z',
    locations => <<'EOF'));
    location /slow {
        proxy_pass http://127.0.0.1:%%PORT1%%;
    }

    location = /ssi.html {
        root %%TESTDIR%%;
        ssi on;
        log_subrequest on;
    }
EOF

open(my $fh, '>', $t->dir . '/ssi.html') or die $!;
print $fh 'x<!--# include virtual="/" -->y';
close $fh;

$t->start();

sub client {
    my ($name) = @_;
    my $j = decode_json($t->get("/status?client=$name")->{content});
    my ($c) = grep { $_->{name} eq $name } @{ $j->{clients} };
    return $c;
}

# team-a's slow request is under way while two other clients arrive

my $s = IO::Socket::INET->new('127.0.0.1:' . $t->port(0)) or die $!;
print $s "GET /slow HTTP/1.0\r\nHost: x\r\nX-Client-Id: team-a\r\n\r\n";
select(undef, undef, undef, 0.3);

is($t->get('/', { 'X-Client-Id' => 'team-b' })->{status}, 200, 'team-b');
is($t->get('/', { 'X-Client-Id' => 'team-c' })->{status}, 200,
   'team-c: the zone is full, someone is evicted');

my $resp = do { local $/; <$s> };
like($resp, qr{^HTTP/1\.1 200}, 'the slow request finished');

my $a = client('team-a');
ok($a, 'team-a, pinned while its request ran, was not evicted');
is($a && $a->{responses_total}, 1, 'its response is counted');
ok(!client('team-b'), 'team-b was evicted instead');

# ssi: the subrequest is logged (log_subrequest on) but counted once

$t->get('/ssi.html', { 'X-Client-Id' => 'team-b' });
my $b = client('team-b');
is($b && $b->{requests_total}, 1, 'one request');
is($b && $b->{responses_total}, 1, 'one response, the subrequest not again');

$t->stop();
done_testing();
