#!/usr/bin/perl

# The package as an operator gets it: make deb builds
# libnginx-mod-http-client-guard (dh, dh_nginx, lintian clean), dpkg -i
# installs it into the system nginx (the module, its load snippet enabled,
# the script, the docs; the dependency on this nginx's ABI), README.md's
# minimal configuration pasted into /etc/nginx/conf.d/ passes nginx -t
# without a warning, an nginx loading the module through
# /etc/nginx/modules-enabled serves that configuration (identified,
# limited, logged), then dpkg -r disables it (nginx -t still passes) and
# dpkg -P leaves nothing behind.
#
# The system nginx is never started as a service: the nginx started here
# has its own configuration, pid file and loopback ports. Root only (CI
# is); once per suite (not again under ASan, nor with the module built in).

use strict;
use warnings;

use lib 't/lib';
use CG;
use Test::More;
use File::Find ();
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

my $PKG = 'libnginx-mod-http-client-guard';
my $SO = '/usr/lib/nginx/modules/ngx_http_client_guard_module.so';
my $AVAIL = '/usr/share/nginx/modules-available/mod-http-client-guard.conf';
my $LINK = '/etc/nginx/modules-enabled/50-mod-http-client-guard.conf';
my $SNIPPET = "/etc/nginx/conf.d/zz-cg-test-$$.conf";
my $API_LOG = '/var/log/nginx/api.log';

if ($ENV{CG_ASAN} || $ENV{CG_STATIC}) {
    plan tests => 1;
    pass('the package is tested once, in the run against the shipped build');
    exit 0;
}
plan skip_all => 'installs a package: root only' if $> != 0;

sub sh {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# dpkg, waiting for the lock another dpkg may hold for a while
sub dpkg {
    my @args = @_;
    my ($rc, $out);
    for (1 .. 60) {
        ($rc, $out) = sh("dpkg @args");
        last unless $rc && $out =~ /lock/i;
        sleep 2;
    }
    return ($rc, $out);
}

sub installed {
    my $s = `dpkg-query -W -f '\${Status}' $PKG 2>/dev/null`;
    return $s =~ /\S/ && $s !~ /not-installed/;
}

# the files a package could touch, to compare before and after
sub tree {
    my %f;
    for my $top ('/etc/nginx', '/usr/lib/nginx', '/usr/share/nginx',
                 '/usr/share/doc', '/usr/share/man/man1', '/usr/bin')
    {
        File::Find::find({ no_chdir => 1, wanted => sub {
            return if m{^/usr/share/nginx/src(/|$)};
            $f{$_} = 1;
        } }, $top);
    }
    return \%f;
}

# a package installed already is an operator's: left alone (a run of this
# test that died purges its own on the way out)
plan skip_all => "$PKG is installed here: this test would replace it"
    if installed();

my $t = CG->new();
my $dir = $t->dir;
my $api_log_was = -e $API_LOG;

my $cleanup = sub {
    unlink $SNIPPET;
    unlink $API_LOG if !$api_log_was;
    dpkg('-P', $PKG) if installed();
};
END { $cleanup->() if $cleanup && $> == 0 }

my $before = tree();

# --- build ------------------------------------------------------------------

{
    local $ENV{MAKEFLAGS};
    local $ENV{MAKELEVEL};
    my ($rc, $out) = sh("make --no-print-directory -C '$CG::ROOT' deb");
    is($rc, 0, 'make deb (lintian clean: it fails on a warning)')
        or diag(substr($out, -3000));
}
my ($deb) = grep { !/-dbgsym_/ } glob("$CG::ROOT/build/deb/${PKG}_*.deb");
ok($deb, 'the package is built') or BAIL_OUT('no package');

my ($abi) = `cat /usr/share/nginx/src/debian/libnginx-mod.abisubstvars`
    =~ /^nginx:abi=(\S+)/m;
my $depends = `dpkg-deb -f '$deb' Depends`;
like($depends, qr/(^|, )\Q$abi\E(,|$)/m,
     "depends on the ABI of the nginx it was built for ($abi)");
like(`dpkg-query -W -f '\${Provides}' nginx`, qr/\Q$abi\E/,
     'which the installed nginx provides');

# --- install ----------------------------------------------------------------

my ($rc, $out) = dpkg('-i', $deb);
is($rc, 0, 'dpkg -i') or diag($out);
ok(-f $SO, "the module in /usr/lib/nginx/modules");
like(`cat $AVAIL 2>/dev/null`,
     qr{^load_module modules/ngx_http_client_guard_module\.so;$}m,
     'its load snippet in modules-available');
is(readlink($LINK), $AVAIL, 'enabled: linked from modules-enabled');
($rc, $out) = sh('client-guard-quota --help');
is($rc, 2, 'client-guard-quota on PATH') or diag($out);
ok(-f "/usr/share/doc/$PKG/docs/operations.md.gz"
   || -f "/usr/share/doc/$PKG/docs/operations.md", 'the docs');
ok(-f '/usr/share/man/man1/client-guard-quota.1.gz', 'the manual page');

# --- README.md's configuration, verbatim, in conf.d -------------------------

open(my $fh, '<', "$CG::ROOT/README.md") or die "README.md: $!\n";
my $readme = do { local $/; <$fh> };
my ($conf) = $readme =~ /^## Minimal configuration\n.*?^```nginx\n(.*?)^```$/ms;
ok($conf && $conf =~ /client_guard_zone/,
   "README.md's minimal configuration found") or BAIL_OUT('README.md');

open($fh, '>', $SNIPPET) or die "$SNIPPET: $!\n";
print $fh $conf;
close $fh;
($rc, $out) = sh('/usr/sbin/nginx -t');
is($rc, 0, 'nginx -t of the system configuration with it in conf.d/')
    or diag($out);
unlike($out, qr/\[(warn|emerg|alert)\]/, 'and no warning') or diag($out);

# --- serving it -------------------------------------------------------------

# the same text, on test ports and paths: the module loaded as the system
# loads it (modules-enabled/*.conf, relative to nginx's prefix)
my $port = $t->port(0);
my $backend = $t->port(1);
my $served = $conf;
my %subst = ('listen 80;' => "listen 127.0.0.1:$port;",
             'server 127.0.0.1:8080;' => "server 127.0.0.1:$backend;",
             $API_LOG => "$dir/api.log");
for my $from (sort keys %subst) {
    my $n = () = $served =~ /\Q$from\E/g;
    is($n, 1, "README's \"$from\", once");
    $served =~ s/\Q$from\E/$subst{$from}/;
}
open($fh, '>', "$dir/nginx.conf") or die;
print $fh <<"EOF";
include /etc/nginx/modules-enabled/*.conf;
pid $dir/nginx.pid;
error_log $dir/error.log info;
worker_processes 1;
daemon off;
events { worker_connections 64; }
http {
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    access_log off;

$served
    server {
        listen 127.0.0.1:$backend;
        location / { return 200 "backend\\n"; }
    }
}
EOF
close $fh;

my $pid = fork // die "fork: $!\n";
if (!$pid) {
    open(STDIN, '<', '/dev/null');
    open(STDOUT, '>>', "$dir/stderr.log");
    open(STDERR, '>&', \*STDOUT);
    exec('/usr/sbin/nginx', '-p', '/usr/share/nginx/', '-c', "$dir/nginx.conf",
         '-e', "$dir/error.log") or POSIX::_exit(127);
}
ok(CG::wait_until(sub {
    waitpid($pid, WNOHANG) != $pid
        && IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") }, 10),
   'nginx with the packaged module serves the configuration')
    or diag(`cat $dir/error.log $dir/stderr.log`);

my $r = $t->get('/', { 'X-Client-Id' => 'team-batch' });
is($r->{status}, 200, 'a request passes to the backend');
like($r->{content} // '', qr/^backend/, 'and gets its answer');
my $st = $t->statuses(40, '/', { 'X-Client-Id' => 'team-batch' });
ok($st->{429} && $st->{200}, 'team-batch over rate=20r/s burst=10 is limited')
    or diag(explain($st));
ok(CG::wait_until(sub {
    `cat $dir/api.log` =~ /^127\.0\.0\.1 team-batch \S+ 429 /m }, 5),
   'the access log names the client and the outcome')
    or diag(`cat $dir/api.log`);
like(`cat $dir/error.log`, qr/limiting client "team-batch" by rate=20r\/s/,
     'the error log says who was limited, by which limit');

kill 'QUIT', $pid;
ok(CG::wait_until(sub { waitpid($pid, WNOHANG) == $pid }, 10),
   'nginx stops');
unlike(`cat $dir/error.log`, qr/\[(alert|emerg)\]/, 'no alert in its log');

# --- remove, purge ----------------------------------------------------------

unlink $SNIPPET;
($rc, $out) = dpkg('-r', $PKG);
is($rc, 0, 'dpkg -r') or diag($out);
ok(!-e $SO && !-e $AVAIL && !-e $LINK, 'the module is gone and disabled');
($rc, $out) = sh('/usr/sbin/nginx -t');
is($rc, 0, 'nginx -t passes after removal') or diag($out);
($rc, $out) = dpkg('-P', $PKG);
is($rc, 0, 'dpkg -P') or diag($out);
ok(!installed(), 'purged');

unlink $API_LOG if !$api_log_was;
my $after = tree();
my @left = grep { !$before->{$_} } sort keys %$after;
my @lost = grep { !$after->{$_} } sort keys %$before;
is_deeply(\@left, [], 'nothing left behind');
is_deeply(\@lost, [], 'nothing else taken away');

undef $cleanup;
$t->cleanup;
done_testing();
