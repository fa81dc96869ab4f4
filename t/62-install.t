#!/usr/bin/perl

# make release builds the module as shipped: Debian's build flags
# (dpkg-buildflags with hardening=+all), no -Werror, while the development
# build keeps CC_WARN's -Werror; make install DESTDIR= puts the module, its
# load snippet (enabled by a link, as Debian's packages do), the script,
# its manual page and the docs where they belong; nginx loads the module
# installed; make uninstall takes every file away again.

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use File::Find ();

if ($ENV{CG_ASAN} || $ENV{CG_STATIC}) {
    plan tests => 1;
    pass('make install is tested once, in the run against the shipped build');
    exit 0;
}

my $t = CG->new();
my $dest = $t->dir . '/root';

sub make {
    local $ENV{MAKEFLAGS};
    local $ENV{MAKELEVEL};
    my $out = `make --no-print-directory -C '$CG::ROOT' @_ 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = make('release');
is($rc, 0, 'make release') or diag(substr($out, -3000));

sub cflags {
    open(my $fh, '<', $_[0]) or return '';
    my ($line) = grep { /^CFLAGS\s*=/ } <$fh>;
    return $line // '';
}
my $release = cflags("$CG::ROOT/build/release/Makefile");
my $dev = cflags("$CG::ROOT/build/nginx/objs/Makefile");
like($release, qr/-O2\b/, 'the release build: -O2');
like($release, qr/-fstack-protector-strong\b/, '-fstack-protector-strong');
like($release, qr/-D_FORTIFY_SOURCE=2\b/, '_FORTIFY_SOURCE');
unlike($release, qr/-Werror(\s|$)/, 'no -Werror');
unlike($release, qr/(^|\s)-O(\s|$)/, "not nginx's own -O");
like(`readelf -d '$CG::ROOT/build/release/ngx_http_client_guard_module.so'`,
     qr/BIND_NOW/, 'linked with BIND_NOW');
SKIP: {
    skip 'no development build in build/nginx (make)', 1 unless $dev;
    like($dev, qr/-Werror(\s|$)/, 'the development build keeps -Werror');
}

($rc, $out) = make("install DESTDIR='$dest'");
is($rc, 0, 'make install DESTDIR=') or diag($out);

my $so = "$dest/usr/lib/nginx/modules/ngx_http_client_guard_module.so";
my $avail = '/usr/share/nginx/modules-available/mod-http-client-guard.conf';
ok(-f $so, 'the module in /usr/lib/nginx/modules');
is(`cat '$dest$avail'`,
   "load_module /usr/lib/nginx/modules/ngx_http_client_guard_module.so;\n",
   'its load snippet in /usr/share/nginx/modules-available');
is(readlink("$dest/etc/nginx/modules-enabled/50-mod-http-client-guard.conf"),
   $avail, 'enabled by a link in /etc/nginx/modules-enabled');
ok(-x "$dest/usr/local/bin/client-guard-quota", 'the script');
ok(-s "$dest/usr/local/share/man/man1/client-guard-quota.1",
   'its manual page');
ok(-f "$dest/usr/local/share/doc/client-guard/docs/operations.md"
   && -f "$dest/usr/local/share/doc/client-guard/README.md", 'the docs');

# the installed module loads into nginx
$t->write_conf(CG::http(), no_module => 1, main => "load_module $so;");
$t->start();
is($t->get('/', { 'X-Client-Id' => 'team-a' })->{status}, 200,
   'nginx serves with the installed module');
$t->stop();

($rc, $out) = make("uninstall DESTDIR='$dest'");
is($rc, 0, 'make uninstall') or diag($out);
my @left;
File::Find::find({ no_chdir => 1,
                   wanted => sub { push @left, $_ unless -d $_ } }, $dest);
is_deeply(\@left, [], 'no file left');

done_testing();
