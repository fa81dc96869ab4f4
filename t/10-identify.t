#!/usr/bin/perl
# Identification: header, regex capture over User-Agent, CIDR, rule order,
# fallback and rejection of unidentified requests, hostile names,
# $client_guard_client, location captures left intact.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

$t->write_conf(<<'EOF', access_log => 1);
    client_guard_zone zone=cg:1m;

    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.2:%%PORT%%;

        add_header X-Client $client_guard_client always;
        add_header X-Guard $client_guard_status always;

        client_guard zone=cg;
        client_guard_identify $http_x_client_id;
        client_guard_identify $http_user_agent "~^(?<team>[A-Za-z]+)-svc/" $team;
        client_guard_identify $http_user_agent "~*^probe-(\w+)/(\w+)" "$1.$2";
        client_guard_identify_address 127.0.0.2/32 10.9.0.0/16 batch-hosts;
        client_guard_log_level warn;

        location / {
            empty_gif;
        }

        location /strict/ {
            client_guard_fallback off;
            client_guard_unidentified_status 401;
            empty_gif;
        }

        location /custom-fallback/ {
            client_guard_fallback Anonymous;
            empty_gif;
        }

        location /short/ {
            client_guard_name_max_length 8;
            empty_gif;
        }

        location ~ ^/cap/(?<rest>.*)$ {
            add_header X-Client $client_guard_client always;
            add_header X-Rest $rest always;
            add_header X-One $1 always;
            empty_gif;
        }

        location /noguard/ {
            client_guard off;
            empty_gif;
        }

        location /forms/ {
            client_guard_identify ${http_x_team};
            client_guard_identify $cookie_team;
            client_guard_identify "$http_x_org.$http_x_unit";
            empty_gif;
        }

        location /mapped/ {
            client_guard_identify $http_x_mapped;
            client_guard_identify $http_host;
            empty_gif;
        }
    }

    # $http_x_mapped is the map's, not the X-Mapped header
    map $arg_t $http_x_mapped {
        default "";
        ~.      "m-$arg_t";
    }

    server {
        listen 127.0.0.1:%%PORT1%%;
        underscores_in_headers on;

        add_header X-Client $client_guard_client always;
        add_header X-Guard $client_guard_status always;

        client_guard zone=cg;
        client_guard_identify $http_x_client_id;

        location / {
            empty_gif;
        }
    }
EOF

$t->start();

sub id {
    my ($path, $headers, %opt) = @_;
    my $r = $t->get($path, $headers, %opt);
    return join ' ', $r->{status}, $r->{headers}{'x-client'} // '-',
        $r->{headers}{'x-guard'} // '-';
}

# a request with a header value HTTP::Tiny refuses to send
sub raw_id {
    my ($path, $value) = @_;
    my $s = $t->connect();
    print $s "GET $path HTTP/1.0\r\nHost: x\r\nX-Client-Id: $value\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($client) = $resp =~ /^X-Client: (.*?)\r$/mi;
    my ($guard) = $resp =~ /^X-Guard: (.*?)\r$/mi;
    return join ' ', $status // 0, $client // '-', $guard // '-';
}

is(id('/', { 'X-Client-Id' => 'team-search' }), '200 team-search PASSED',
   'header');
is(id('/', { 'X-Client-Id' => 'Team-Search' }), '200 team-search PASSED',
   'name lowercased');
is(id('/', { 'User-Agent' => 'Billing-svc/2.1' }), '200 billing PASSED',
   'named regex capture over User-Agent');
is(id('/', { 'User-Agent' => 'PROBE-eu/west' }), '200 eu.west PASSED',
   'caseless regex, name composed of two captures');
is(id('/', { 'X-Client-Id' => 'team-a', 'User-Agent' => 'billing-svc/1' }),
   '200 team-a PASSED', 'first matching rule wins');

# the client address is 127.0.0.2 when the connection comes from it

my $port = $t->port(0);
my $r = `curl -s -o /dev/null -w '%{http_code} %header{x-client}' --interface 127.0.0.2 http://127.0.0.2:$port/ 2>&1`;
is($r, '200 batch-hosts', 'CIDR rule on the client address');

is(id('/'), '200 unknown PASSED', 'no rule matched: fallback "unknown"');
is(id('/custom-fallback/'), '200 anonymous PASSED', 'configured fallback');
is(id('/strict/'), '401 - UNIDENTIFIED', 'fallback off: rejected');
is(id('/strict/', { 'X-Client-Id' => 'team-a' }), '200 team-a PASSED',
   'fallback off: identified passes');

# hostile names: long, binary, unicode, spaces all fall to the fallback

is(id('/', { 'X-Client-Id' => 'a' x 65 }), '200 unknown PASSED',
   'name over 64 characters');
is(id('/', { 'X-Client-Id' => 'a' x 64 }), '200 ' . ('a' x 64) . ' PASSED',
   'name of 64 characters');
is(id('/', { 'X-Client-Id' => 'a' x 4000 }), '200 unknown PASSED',
   'very long name');
is(raw_id('/', "t\xc3\xa9am"), '200 unknown PASSED',
   'unicode name');
is(raw_id('/', "team\x01\x7f\xff"), '200 unknown PASSED',
   'binary name');
is(id('/', { 'X-Client-Id' => 'team a' }), '200 unknown PASSED',
   'name with a space');
is(id('/', { 'X-Client-Id' => 'team/../a' }), '200 unknown PASSED',
   'name with a slash');
is(id('/short/', { 'X-Client-Id' => 'abcdefghi' }), '200 unknown PASSED',
   'client_guard_name_max_length');
is(raw_id('/strict/', "bad\x01name"), '401 - UNIDENTIFIED',
   'invalid name with fallback off: rejected');

like($t->error_log,
     qr/\[warn\].*rejecting unidentified request \(invalid name: "bad\\x01name"\) with 401/,
     'rejection logged at the configured level, value escaped');
like($t->error_log,
     qr/rejecting unidentified request \(no rule matched: ""\) with 401/,
     'missing name logged');

# the location's own captures survive the module's regex

$r = $t->get('/cap/x/y', { 'User-Agent' => 'probe-a/b' });
is($r->{headers}{'x-client'}, 'a.b', 'identified in a regex location');
is($r->{headers}{'x-rest'}, 'x/y', 'named capture of the location intact');
is($r->{headers}{'x-one'}, 'x/y', '$1 of the location intact');

# the variable works where the module does not enforce

is(id('/noguard/', { 'X-Client-Id' => 'team-b' }), '200 team-b -',
   '$client_guard_client without enforcement');

# a source is one variable, "${name}", or text with variables

is(id('/forms/', { 'X-Team' => 'Ops' }), '200 ops PASSED', '${var} source');
is(id('/forms/', { 'Cookie' => 'a=1; team=Web' }), '200 web PASSED',
   'a variable not found: the next rule');
is(id('/forms/', { 'X-Org' => 'acme', 'X-Unit' => 'Pay' }),
   '200 acme.pay PASSED', 'a source with text and two variables');
is(id('/forms/', { 'X-Team' => '', 'Cookie' => 'team=db' }),
   '200 db PASSED', 'an empty value: the next rule');

# "$http_name" is read from the header list directly (cg_identity.c): the
# same value as nginx's variable in every case

sub raw_req {
    my ($port, $headers, $path) = @_;
    my $s = $t->connect($port);
    $path //= '/';
    $headers = "Host: x\r\n$headers" unless $headers =~ /^Host:/m;
    print $s "GET $path HTTP/1.0\r\n$headers\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($client) = $resp =~ /^X-Client: (.*?)\r$/mi;
    return join ' ', $status // 0, $client // '-';
}

my ($major, $minor) = `$CG::NGINX -v 2>&1` =~ m{nginx/(\d+)\.(\d+)\.};
my $joins = $major && ($major > 1 || $minor >= 23);

is(raw_req($t->port(0), "X-Client-Id: first\r\nX-Client-Id: second\r\n"),
   $joins ? '200 unknown' : '200 first',
   'header sent twice: as nginx\'s variable has it ("first, second" from '
   . '1.23 on: no valid name; the first before)');
is(raw_req($t->port(0), "x-CLIENT-id: Mixed\r\n"), '200 mixed',
   'header name in any case');
is(raw_req($t->port(0), "X-Client-Ids: longer\r\nX-Client-I: shorter\r\n"),
   '200 unknown', 'longer and shorter header names do not match');
is(raw_req($t->port(0), "X_Client_Id: under\r\n"), '200 unknown',
   'header name with "_": ignored by default, as nginx does');
is(raw_req($t->port(1), "X_Client_Id: under\r\n"), '200 under',
   'header name with "_" where underscores_in_headers is on');
is(raw_req($t->port(1), "X-Client-Id: dash\r\n"), '200 dash',
   'header name with "-" there too');
is(id('/mapped/?t=abc', { 'X-Mapped' => 'header-value' }), '200 m-abc PASSED',
   '$http_ variable made by "map": the map\'s value, not the header');
is(raw_req($t->port(0), "Host: Edge\r\nX-Mapped: header-value\r\n",
           '/mapped/'), '200 edge', 'core variable $http_host');

my @log = $t->access_log;
ok((grep { /^127\.0\.0\.1 team-search PASSED 200 / } @log), 'access log');
ok((grep { /^127\.0\.0\.1 - UNIDENTIFIED 401 / } @log),
   'access log of a rejected request');

$t->stop();
done_testing();
