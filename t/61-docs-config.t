#!/usr/bin/perl

# The configurations the docs give to paste: README.md's minimal one and
# docs/operations.md's for several load balancers pass nginx -t as they
# are, inside http {} (what Debian's conf.d/ files are), only the paths
# of their logs and certificates moved into the test's directory and
# their listening addresses to free loopback ports. Without
# root and without the package (t/60 pastes README.md's into the system's
# conf.d/ and serves it).

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;

my $t = CG->new();

sub block {
    my ($file, $heading) = @_;
    open(my $fh, '<', "$CG::ROOT/$file") or die "$file: $!\n";
    my $text = do { local $/; <$fh> };
    my ($conf) = $text =~ /^\Q$heading\E\n.*?^```nginx\n(.*?)^```$/ms;
    return $conf;
}

my ($crt, $key) = $t->server_cert;
my $dir = $t->dir;

for my $doc (['README.md', '## Minimal configuration'],
             ['docs/operations.md', '## Several load balancers on one Redis'])
{
    my ($file, $heading) = @$doc;
    my $conf = block($file, $heading);
    ok($conf && $conf =~ /client_guard_zone/,
       "$file: the configuration under \"$heading\"") or next;
    like($conf, qr/^# \/etc\/nginx\/conf\.d\/\S+\.conf/,
         "$file: says where it goes");

    # what a test cannot open where the docs put it (nginx -t binds the
    # listening sockets too)
    $conf =~ s{/var/log/nginx/}{$dir/}g;
    my $n = 0;
    $conf =~ s{^(\s*listen\s+)[^\s;]+}{$1 . '127.0.0.1:' . $t->port($n++)}gme;
    $conf =~ s{ssl_certificate\s+\S+;}{ssl_certificate $crt;};
    $conf =~ s{ssl_certificate_key\s+\S+;}{ssl_certificate_key $key;};

    my ($rc, $out) = $t->nginx_test_conf($conf);
    is($rc, 0, "$file: nginx -t") or diag($out);
    unlike($out, qr/\[(warn|emerg)\]/, "$file: no warning") or diag($out);
}

done_testing();
