#!/usr/bin/perl
# Every bad directive value fails `nginx -t` with a message that names the
# directive and the value.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

my $zone = "client_guard_zone zone=cg:1m;\n";

sub conf_with {
    my ($http, $loc) = @_;
    $loc //= '';
    return <<"EOF";
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            $loc
            empty_gif;
        }
    }
EOF
}

my @cases = (
    # client_guard_zone
    [ 'client_guard_zone cg:1m;', '',
      qr/invalid parameter "cg:1m" in "client_guard_zone"/ ],
    [ 'client_guard_zone zone=cg;', '',
      qr/invalid zone size "zone=cg" in "client_guard_zone"/ ],
    [ 'client_guard_zone zone=cg:lots;', '',
      qr/invalid zone "zone=cg:lots" in "client_guard_zone"/ ],
    [ 'client_guard_zone zone=:1m;', '',
      qr/invalid zone "zone=:1m" in "client_guard_zone"/ ],
    [ 'client_guard_zone zone=cg:1k;', '',
      qr/zone "zone=cg:1k" of "client_guard_zone" is too small/ ],
    [ 'client_guard_zone zone=cg:1m clients=0;', '',
      qr/invalid "clients" value "clients=0" in "client_guard_zone"/ ],
    [ 'client_guard_zone zone=cg:1m clients=x;', '',
      qr/invalid "clients" value "clients=x"/ ],
    [ "$zone client_guard_zone zone=cg:1m;", '',
      qr/duplicate client_guard_zone "cg"/ ],
    [ 'client_guard_zone clients=5;', '',
      qr/"client_guard_zone" must have "zone=name:size"/ ],

    # client_guard
    [ '', 'client_guard zone=nope;',
      qr/unknown client_guard_zone "nope"/ ],
    [ $zone, 'client_guard cg;',
      qr/invalid parameter "cg" in "client_guard", expected "zone=name" or "off"/ ],
    [ $zone, 'client_guard zone=;',
      qr/invalid parameter "zone=" in "client_guard"/ ],
    [ $zone, 'client_guard zone=cg; client_guard off;',
      qr/"client_guard" directive is duplicate/ ],

    # client_guard_quota
    [ "$zone client_guard_quota team-a rate=10;", '',
      qr/invalid rate, expected a value such as "100r\/s": "rate=10" in "client_guard_quota" for client "team-a"/ ],
    [ "$zone client_guard_quota team-a rate=10r/w;", '',
      qr/invalid rate.*"rate=10r\/w"/ ],
    [ "$zone client_guard_quota team-a rate=-5r/s;", '',
      qr/invalid rate.*"rate=-5r\/s"/ ],
    [ "$zone client_guard_quota team-a rate=99999999999999r/s;", '',
      qr/invalid rate.*"rate=99999999999999r\/s"/ ],
    [ "$zone client_guard_quota team-a burst=5;", '',
      qr/"burst" must follow a "rate": "burst=5"/ ],
    [ "$zone client_guard_quota team-a rate=1r/s burst=x;", '',
      qr/invalid burst, expected a number: "burst=x"/ ],
    [ "$zone client_guard_quota team-a quota=5/year;", '',
      qr/invalid quota, expected a value such as "5000\/d": "quota=5\/year"/ ],
    [ "$zone client_guard_quota team-a rate=1r/s mode=loud;", '',
      qr/invalid mode, expected "enforce", "dry_run" or "off": "mode=loud"/ ],
    [ "$zone client_guard_quota team-a speed=3;", '',
      qr/unknown parameter: "speed=3" in "client_guard_quota" for client "team-a"/ ],
    [ "$zone client_guard_quota team-a mode=enforce;", '',
      qr/no "rate" or "quota" given in "client_guard_quota" for client "team-a"/ ],
    [ "$zone client_guard_quota team-a rate=1r/s quota=1/s quota=1/m quota=1/h quota=1/d;", '',
      qr/too many limits: "quota=1\/d"/ ],
    [ "$zone client_guard_quota team-a rate=1r/s; client_guard_quota Team-A rate=2r/s;", '',
      qr/duplicate quota for client "team-a"/ ],
    [ "$zone client_guard_quota 'team a' rate=1r/s;", '',
      qr/invalid client name "team a" in "client_guard_quota"/ ],
    [ "$zone client_guard_quota team-a;", '',
      qr/invalid number of arguments in "client_guard_quota"/ ],

    # identification
    [ $zone, 'client_guard_identify "";',
      qr/empty source in "client_guard_identify"/ ],
    [ $zone, 'client_guard_identify $http_x regex;',
      qr/invalid regex "regex" in "client_guard_identify", expected "~regex" or "~\*regex"/ ],
    [ $zone, 'client_guard_identify $http_x "~(unclosed";',
      qr/pcre2_compile\(\) failed: missing closing parenthesis in "\(unclosed"/ ],
    [ $zone, 'client_guard_identify $http_x "~^abc$";',
      qr/regex "~\^abc\$" in "client_guard_identify" has no capture: give the name as a third parameter/ ],
    [ $zone, 'client_guard_identify $http_x "~(a)" "";',
      qr/empty name in "client_guard_identify"/ ],
    [ $zone, 'client_guard_identify $no_such_variable;',
      qr/unknown "no_such_variable" variable/ ],
    [ $zone, 'client_guard_identify_address 10.0.0.0/33 batch;',
      qr/invalid address "10.0.0.0\/33" in "client_guard_identify_address"/ ],
    [ $zone, 'client_guard_identify_address 10.0.0.0/8 "bad name";',
      qr/invalid client name "bad name" in "client_guard_identify_address"/ ],
    [ $zone, 'client_guard_fallback "no way";',
      qr/invalid client name "no way" in "client_guard_fallback"/ ],

    # numbers and flags
    [ $zone, 'client_guard_reject_status 200;',
      qr/"client_guard_reject_status" directive invalid value "200", it must be a number from 400 to 599/ ],
    [ $zone, 'client_guard_unidentified_status 700;',
      qr/"client_guard_unidentified_status" directive invalid value "700", it must be a number from 400 to 599/ ],
    [ $zone, 'client_guard_reject_status 4xx;',
      qr/"client_guard_reject_status" directive invalid number/ ],
    [ $zone, 'client_guard_name_max_length 200;',
      qr/"client_guard_name_max_length" directive invalid value "200", it must be a number from 1 to 128/ ],
    # nginx's own enum slot, as limit_req_log_level: the value and the line
    [ $zone, 'client_guard_log_level loud;',
      qr/invalid value "loud" in \S+nginx\.conf:\d+/ ],
    [ $zone, 'client_guard_headers maybe;',
      qr/invalid value "maybe" in "client_guard_headers" directive/ ],
    [ $zone, 'client_guard_dry_run yes;',
      qr/invalid value "yes" in "client_guard_dry_run" directive/ ],
);

for my $c (@cases) {
    my ($http, $loc, $re) = @$c;
    my ($rc, $out) = $t->nginx_test_conf(conf_with($http, $loc));
    isnt($rc, 0, "nginx -t fails: $http $loc");
    like($out, $re, "message: $re");
}

# and a good configuration passes

my ($rc, $out) = $t->nginx_test_conf(conf_with(
    "$zone client_guard_quota default rate=100r/s burst=50 quota=1000000/d;",
    'client_guard zone=cg; client_guard_identify $http_x_client_id;'));
is($rc, 0, 'a good configuration passes') or diag $out;


# a zone may be declared after the client_guard that uses it

($rc, $out) = $t->nginx_test_conf(<<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        client_guard zone=later;
        location / { empty_gif; }
    }
    client_guard_zone zone=later:1m;
EOF
is($rc, 0, 'zone declared after use') or diag $out;

done_testing();
