#!/usr/bin/perl
# The status answers say where their MIME type ends, so that gzip_types
# (and anything else that matches types by name) applies to them: JSON,
# Prometheus text and OpenMetrics compressed by their own type, the
# dashboard as before; a type not listed stays as it is.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

$t->write_conf(CG::http(
    status => 1,
    server => <<'EOF2'));
    gzip on;
    gzip_min_length 1;
    gzip_types application/json text/plain application/openmetrics-text;
EOF2
$t->start();

$t->get('/', { 'X-Client-Id' => 'team-a' }) for 1 .. 3;

my %gz = ('Accept-Encoding' => 'gzip');

for my $f (qw(json prometheus openmetrics html)) {
    my $r = $t->get("/status?format=$f", \%gz);
    is($r->{status}, 200, "$f: 200");
    like($r->{headers}{'content-type'} // '',
         $f eq 'json' ? qr{^application/json$} : qr/;\s*(version|charset)=/,
         "$f: the full Content-Type, parameters kept");
    is($r->{headers}{'content-encoding'} // '', 'gzip',
       "$f: compressed by its type");
}

# a type gzip_types does not list: not compressed (it is the type that
# is matched, not anything at all)
$t->write_conf(CG::http(
    status => 1,
    server => <<'EOF2'));
    gzip on;
    gzip_min_length 1;
    gzip_types application/json;
EOF2
ok($t->reload(), 'reload: JSON only');
my $r = $t->get('/status?format=prometheus', \%gz);
is($r->{headers}{'content-encoding'} // '', '', 'Prometheus text: as is');
$r = $t->get('/status?format=json', \%gz);
is($r->{headers}{'content-encoding'} // '', 'gzip', 'JSON: compressed');

$t->stop();
done_testing();
