#!/usr/bin/perl
# Identification by client certificate subject: the test makes its own CA,
# a server certificate and client certificates with openssl, and talks TLS
# with curl.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

my $ca = $t->openssl_ca();
my ($scrt, $skey) = $t->server_cert();
my ($acrt, $akey) = $t->make_client_cert('team-pay');
my ($bcrt, $bkey) = $t->make_client_cert('Team Bad Name', name => 'bad');

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['default rate=1r/m burst=1'],
    listen => 'ssl',
    # only a verified certificate names a client
    identify => 'client_guard_identify $ssl_client_verify:$ssl_client_s_dn
                                       "~^SUCCESS:.*CN=([^,]+)";',
    server => <<"EOF"));
    ssl_certificate $scrt;
    ssl_certificate_key $skey;
    ssl_client_certificate $ca;
    ssl_verify_client optional;

    add_header X-Client \$client_guard_client always;
    add_header X-Guard \$client_guard_status always;
EOF

$t->start();

my $port = $t->port(0);

sub curl {
    my (@args) = @_;
    my $out = `curl -sk -o /dev/null -w '%{http_code} %header{x-client} %header{x-guard}' --cacert $ca @args https://127.0.0.1:$port/ 2>&1`;
    return $out;
}

is(curl("--cert $acrt --key $akey"), '200 team-pay PASSED',
   'client named by certificate CN');
is(curl("--cert $acrt --key $akey"), '200 team-pay PASSED',
   'second request within burst');
is(curl("--cert $acrt --key $akey"), '429 team-pay REJECTED',
   'the certificate client is limited');
is(curl(), '200 unknown PASSED', 'no certificate: fallback');
is(curl("--cert $bcrt --key $bkey"), '200 unknown PASSED',
   'CN that is no valid name: fallback');

$t->stop();
done_testing();
