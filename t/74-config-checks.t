#!/usr/bin/perl
# Misconfigurations that passed `nginx -t` and then did nothing, or not
# what was meant (issue 13): each fails it with a message that names the
# directive and the file:line, in t/25-config-errors.t's style; quota=0 is
# refused as rate=0 is.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

my $zone = "client_guard_zone zone=cg:1m;";

sub conf_with {
    my ($http, $srv) = @_;
    return <<"EOF";
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        $srv
        location / { empty_gif; }
    }
EOF
}

# the line of nginx.conf that matches
sub line_of {
    my ($re) = @_;
    my @lines = split /\n/, $t->{conf};
    for my $i (0 .. $#lines) {
        return $i + 1 if $lines[$i] =~ $re;
    }
    return 0;
}

my $file = $t->dir . '/nginx.conf';

my @cases = (
    [ "$zone", 'client_guard zone=cg; client_guard_identify_api_key $http_x_api_key;',
      qr/"client_guard_identify_api_key" needs "client_guard_redis": the API keys are read from Redis, in \Q$file\E:(\d+)/,
      qr/client_guard_identify_api_key/ ],
    [ '', 'location /status { client_guard_status; }',
      qr/"client_guard_status" needs a zone: no "client_guard_zone" is declared, in \Q$file\E:(\d+)/,
      qr/client_guard_status;/ ],
    [ '', 'location /me { client_guard_status_self; }',
      qr/"client_guard_status_self" needs a zone: no "client_guard_zone" is declared, in \Q$file\E:(\d+)/,
      qr/client_guard_status_self;/ ],
    [ "$zone", 'client_guard zone=apx;',
      qr/unknown client_guard_zone "apx": declare it with "client_guard_zone zone=apx:size", in \Q$file\E:(\d+)/,
      qr/zone=apx;/ ],
    [ "$zone client_guard_quota team-a quota=0/m;", '',
      qr/invalid quota, a quota of 0 admits no request: expected a value such as "5000\/d": "quota=0\/m" in "client_guard_quota" for client "team-a" in \Q$file\E:(\d+)/,
      qr/quota=0\/m/ ],
    [ "$zone client_guard_quota team-a rate=0r/s;", '',
      qr/invalid rate, expected a value such as "100r\/s": "rate=0r\/s" in "client_guard_quota" for client "team-a" in \Q$file\E:(\d+)/,
      qr/rate=0r\/s/ ],
    [ "$zone", 'client_guard zone=cg; client_guard_identify_api_key $http_x_api_key unknown=200;',
      qr/invalid parameter "unknown=200" in "client_guard_identify_api_key", expected "unknown=fallback" or "unknown=" and a status from 400 to 499/ ],
    [ "$zone", 'client_guard zone=cg; client_guard_identify_api_key $http_x_api_key unknown;',
      qr/invalid parameter "unknown" in "client_guard_identify_api_key"/ ],
);

for my $c (@cases) {
    my ($http, $srv, $re, $at) = @$c;
    my ($rc, $out) = $t->nginx_test_conf(conf_with($http, $srv));
    isnt($rc, 0, "nginx -t fails: $http $srv");
    like($out, $re, "message: $re") or next;
    next unless $at;
    my ($line) = $out =~ $re;
    is($line, line_of($at), "the line is the directive's ($line)");
}

# the same, done right, pass

for my $ok (
    [ "$zone client_guard_redis 127.0.0.1:1;",
      'client_guard zone=cg; client_guard_identify_api_key $http_x_api_key unknown=403;' ],
    [ "$zone client_guard_redis 127.0.0.1:1;",
      'client_guard zone=cg; client_guard_identify_api_key $http_x_api_key unknown=fallback;' ],
    [ 'client_guard_zone zone=late:1m;', 'location /status { client_guard_status zone=late; }' ],
    [ "$zone client_guard_quota team-a quota=1/d;", '' ])
{
    my ($rc, $out) = $t->nginx_test_conf(conf_with(@$ok));
    is($rc, 0, "passes: @$ok") or diag $out;
}

# a status location before any zone is declared: the check waits for the
# end of the http block

my ($rc, $out) = $t->nginx_test_conf(<<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /status { client_guard_status; }
    }
    client_guard_zone zone=later:1m;
EOF
is($rc, 0, 'a zone declared after the status location') or diag $out;

done_testing();
