package CG;

# Test harness for ngx_http_client_guard_module: one nginx (and any number of
# redis-server instances) per CG object, all inside a temporary directory.
# Core Perl only (IO::Socket::SSL is loaded lazily for https requests).
#
#   use lib 't/lib'; use CG; use Test::More;
#   my $t = CG->new();                  # temp dir, ports, process bookkeeping
#   $t->redis_start();                  # redis-server on a free port
#   $t->write_conf(<<'EOF');            # http{} body; %%PORT%% etc. expanded
#   server { listen 127.0.0.1:%%PORT%%; location / { empty_gif; } }
#   EOF
#   $t->write_conf(CG::http(quotas => ['default rate=1r/m burst=2']));
#                                       # or the usual zone, guarded server,
#                                       # location / and so on (see http)
#   $t->start();
#   is($t->get('/')->{status}, 200);
#   $t->stop();                         # adds one test: no alerts in logs
#   done_testing();
#
# Environment:
#   CG_MODULE   module to load (default build/ngx_http_client_guard_module.so,
#               build/asan/... under CG_ASAN); BAIL_OUT when it is missing
#   NGINX_BIN   nginx binary (default /usr/sbin/nginx)
#   CG_ASAN=1   run nginx with gcc's libasan preloaded; AddressSanitizer
#               reports fail the log check; timeouts are tripled
#   CG_STATIC=1 nginx has the module built in (--add-module): no load_module
#   CG_KEEP=1   keep the temp directories (kept anyway when a test failed;
#               their paths are printed)
#
# Placeholders in write_conf/nginx_test_conf text:
#   %%PORT%% = port(0), %%PORTn%% = port(n), %%REDIS_PORT%% = first redis
#   instance (or the redis_port given to new), %%REDIS_PORTn%% = instance n,
#   %%TESTDIR%% = the temp dir, %%MODULE%% = the module path.
#
# Methods (see each sub): new, dir, port, write_conf, nginx_test_conf, start,
# reload, stop, nginx_pid, worker_pids, error_log, error_log_like,
# wait_for_log, wait_for_link, access_log, allow_alerts, request, get,
# get_port, statuses, connect, redis_start, redis_cluster_start, redis_port,
# redis_stop, redis_restart, redis_pause, redis_resume, redis_cli,
# fake_server, stop_fake_servers, sentinel_start, dns_start, dns_set,
# openssl_ca, make_client_cert, server_cert,
# check_logs, promtool_check, promtool_ok, chromium_run, chromium_dom, cleanup,
# nodes; functions http, wait_until, slow, promtool, chromium, fan_out,
# fork_child, wait_child, stop_child, register_child, window_clear,
# traffic_counts.
#
# Quota windows are fixed and aligned to the epoch (N/h starts again at
# every full hour, UTC, N/m at every full minute): a count of a window's
# admissions that crossed an edge would see two windows.  The first new()
# of a test waits out an hour edge less than $EDGE_NEED s away; a test
# that counts a shorter window, or counts an hour's later than that, calls
# window_clear before it counts.
#
# However a test ends (done, die, BAIL_OUT, SIGINT/SIGTERM/SIGHUP from prove
# or a terminal), every process it started is stopped: see "child
# processes" below.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(rmtree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);
use Test::More ();

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $ASAN = $ENV{CG_ASAN} ? 1 : 0;

# Under CI (CI=true) every tool a test may skip for (redis-server, promtool,
# prometheus, chromium, nchan, IO::Socket::SSL) is installed by make deps:
# a skip there means a broken install, so it fails instead of hiding it.
# CG_ALLOW_SKIP=1 allows skips again.
if ($ENV{CI} && $ENV{CI} ne 'false' && !$ENV{CG_ALLOW_SKIP}) {
    no warnings 'redefine';
    *Test::Builder::skip = sub {
        my ($tb, $why) = @_;
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        $tb->ok(0, "not skipped under CI: " . ($why // ''));
    };
    my $plan = \&Test::Builder::plan;
    *Test::Builder::plan = sub {
        my ($tb, $cmd, $arg) = @_;
        if (defined $cmd && $cmd eq 'skip_all') {
            $tb->ok(0, "not skipped under CI: " . ($arg // ''));
            $tb->done_testing();
            exit 1;
        }
        return $plan->(@_);
    };
}
our $MODULE = $ENV{CG_MODULE} || ($ASAN
    ? "$ROOT/build/asan/ngx_http_client_guard_module.so"
    : "$ROOT/build/ngx_http_client_guard_module.so");
our $NGINX = $ENV{NGINX_BIN} || '/usr/sbin/nginx';

my $SLOW = $ASAN ? 3 : 1;
my %LIVE;                       # every CG object of this process, weakened
my $MAIN = $$;                  # the test's process (not a child it forked)
my %GROUPS;                     # pid => 1: children stopped at the end
my @SIGNALS = qw(INT TERM HUP); # the end of a test from outside
my $DYING;                      # the test died or was interrupted
my $STOPPING;                   # stop_everything is under way
my $LIBASAN;

my $EDGE_NEED = 40;             # s: a test's counts of an hour's window
my $EDGE_DONE;                  # new() has checked the hour edge

sub slow { return $SLOW }

# window_clear($period_s, $need_s): when the next edge of a window of
# $period_s seconds is less than $need_s away, sleep until just past it.
# Returns the seconds slept.

# traffic_counts($prefix, $since): the lines "time status how" that traffic
# generators wrote to files "$prefix.WHO.*" (one per generator), counted
# by WHO and status, and by how ($client_guard_redis) over all; lines
# before $since (default 0) are left out. Returns (\%by_who, \%by_how).
sub traffic_counts {
    my ($prefix, $since) = @_;
    my (%n, %how);
    for my $f (glob "$prefix.*") {
        my ($who) = substr($f, length($prefix) + 1) =~ /^([^.]+)/;
        open(my $fh, '<', $f) or next;
        while (<$fh>) {
            my ($at, $status, $how) = split;
            next if !defined $status || $at < ($since // 0);
            $n{$who}{$status}++;
            $how{$how // '-'}++;
        }
    }
    return (\%n, \%how);
}

sub window_clear {
    my ($period, $need) = @_;
    my $now = time;
    my $left = $period - ($now - int($now / $period) * $period);
    return 0 if $left >= $need;
    Test::More::diag(sprintf('a %d s window ends in %.1f s: waiting for '
        . 'the next one', $period, $left));
    sleep($left + 0.2);
    return $left + 0.2;
}

sub new {
    my ($class, %opt) = @_;

    Test::More::BAIL_OUT("CG_MODULE $MODULE not found: run 'make' first"
        . ($ASAN ? " ('make asan' for CG_ASAN=1)" : ''))
        unless -f $MODULE || $ENV{CG_STATIC};
    Test::More::BAIL_OUT("nginx binary $NGINX not found (NGINX_BIN)")
        unless -x $NGINX;
    window_clear(3600, $EDGE_NEED) unless $EDGE_DONE++;

    # removed by cleanup() unless CG_KEEP is set or a test failed
    my $dir = tempdir('cg-test-XXXXXXXX', TMPDIR => 1);
    # workers run as "nobody" when the tests run as root
    chmod 0755, $dir;
    Test::More::diag("CG test dir: $dir") if $ENV{CG_KEEP};

    my $self = bless {
        dir => $dir, owner => $$, ports => {}, locks => {},
        redis => [], ext_redis => $opt{redis_port}, daemons => [],
        alerts_ok => 0, log_checked => 0, expected => {}, workers => 1,
    }, $class;

    $LIVE{"$self"} = $self;
    weaken($LIVE{"$self"});
    return $self;
}

sub dir { return $_[0]{dir} }

# --- ports ------------------------------------------------------------------

# port($n): a free loopback TCP port, the same for the same $n on this object.
# A UDP socket bound to the same number is held as a lock for the object's
# lifetime, so parallel test files (which do the same) never pick it.
sub port {
    my ($self, $n) = @_;
    $n = 0 unless defined $n;
    return $self->{ports}{$n} if defined $self->{ports}{$n};

    for (1 .. 500) {
        my $port = 20000 + int(rand(10000));
        my $lock = _lock_port($port) or next;
        my $probe = IO::Socket::INET->new(Proto => 'tcp',
            LocalAddr => "127.0.0.1:$port", Listen => 1, ReuseAddr => 1)
            or next;
        close $probe;
        $self->{locks}{$n} = $lock;
        return $self->{ports}{$n} = $port;
    }
    die "CG: no free port found\n";
}

sub _lock_port {
    my ($port) = @_;
    return IO::Socket::INET->new(Proto => 'udp',
        LocalAddr => "127.0.0.1:$port");
}

# --- nginx configuration ------------------------------------------------------

# write_conf($http_block, %opt) writes nginx.conf. Options:
#   workers => N (default 1), error_log_level => 'info', main => text at
#   main level, events => text inside events{}, access_log => 1 (log_format
#   showing $client_guard_client/$client_guard_status to access.log),
#   no_module => 1 (no load_module line), file => name (another file than
#   nginx.conf, for a second configuration). Returns the text written.
#   With client_guard_redis, each nginx names itself "node-PORT" to Redis
#   (client_guard_node) unless the text sets it: a test's nginx share a host.
sub write_conf {
    my ($self, $http, %opt) = @_;
    my $dir = $self->{dir};

    my $workers = defined $opt{workers} ? $opt{workers} : 1;
    my $level = $opt{error_log_level} || 'info';
    my $main = defined $opt{main} ? $opt{main} : '';
    my $events = defined $opt{events} ? $opt{events} : '';
    my $load = ($opt{no_module} || $ENV{CG_STATIC}) ? ''
        : "load_module $MODULE;";

    my $log = 'access_log off;';
    if ($opt{access_log}) {
        $log = "log_format cg_test '\$remote_addr \$client_guard_client "
            . "\$client_guard_status \$status \"\$request\"';\n"
            . "    access_log $dir/access.log cg_test;";
    }

    # several nginx of a test share one host: each names itself to Redis
    # (client_guard_node; the host name by default) unless the test does
    my $node = '';
    if ($http =~ /\bclient_guard_redis\s/ && $http !~ /\bclient_guard_node\b/
        && !$opt{no_module})
    {
        $node = "client_guard_node node-" . $self->port(0) . ";";
    }

    my $conf = <<"EOF";
$load
$main
pid $dir/nginx.pid;
error_log $dir/error.log $level;
worker_processes $workers;
daemon off;
master_process on;

events {
    worker_connections 1024;
    $events
}

http {
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    $log
    $node

$http
}
EOF

    $conf = $self->expand($conf);

    if ($workers eq 'auto') {
        $workers = () = _slurp('/proc/cpuinfo') =~ /^processor\s/mg;
        $workers ||= 1;
    }
    if (!$opt{file} || $opt{file} eq 'nginx.conf') {
        $self->{workers} = $workers;
        $self->{conf} = $conf;
    }
    _spew("$dir/" . ($opt{file} || 'nginx.conf'), $conf);
    return $conf;
}

# http(%opt): the http{} text most tests share, for write_conf and
# nginx_test_conf, so that a test passes only what differs. A function
# (CG::http), no object. Every option may be left out:
#
#   client_guard_zone zone=ZONE;        zone => 'z:1m' (default; parameters
#                                       may follow: 'z:1m clients=2')
#   client_guard_quota Q; ...           quotas => ['default rate=1r/m', ...]
#   client_guard_redis ADDR PARAMS;     redis => 1: 127.0.0.1:%%REDIS_PORT%%;
#                                       'timeout=2s': that address with these
#                                       parameters; '127.0.0.1:%%PORT1%% ...':
#                                       another address (a first word without
#                                       "=")
#   HTTP                                http => more http-level text
#                                       (directives, maps, other servers)
#   server {
#       listen 127.0.0.1:%%PORT%% L;    listen => 'ssl' (parameters)
#       client_guard zone=NAME;
#       IDENTIFY                        identify => the rules; default
#                                       'client_guard_identify $http_x_client_id;'
#       SERVER                          server => more server-level text
#       location / { LOCATION }         location => its body; default
#                                       'empty_gif;' (a handler after the
#                                       access phase: "return" skips the module)
#       location /status {              status => 1, or the parameters of
#           client_guard off;           client_guard_status; left out without
#           client_guard_status S;      status
#       }
#       LOCATIONS                       locations => more locations
#   }
my %HTTP_OPT = map { $_ => 1 } qw(zone quotas redis http listen identify
    server location status locations);

sub http {
    my (%opt) = @_;
    my @unknown = grep { !$HTTP_OPT{$_} } sort keys %opt;
    die "CG::http: unknown option(s) @unknown\n" if @unknown;

    my $zone = defined $opt{zone} ? $opt{zone} : 'z:1m';
    my ($name) = $zone =~ /^([^:\s]+):/
        or die "CG::http: zone => 'name:size ...', not '$zone'\n";
    my $q = $opt{quotas} || [];

    my @http = ("client_guard_zone zone=$zone;",
                map { "client_guard_quota $_;" } ref $q ? @$q : ($q));
    if (my $redis = $opt{redis}) {
        $redis = $redis eq '1' ? '127.0.0.1:%%REDIS_PORT%%'
            : $redis =~ /^[^\s=]+:/ ? $redis
            : "127.0.0.1:%%REDIS_PORT%% $redis";
        push @http, "client_guard_redis $redis;";
    }
    push @http, _block($opt{http}, 0);

    my $listen = $opt{listen} ? " $opt{listen}" : '';
    my @server = ("listen 127.0.0.1:%%PORT%%$listen;",
                  "client_guard zone=$name;");
    push @server, _block(defined $opt{identify} ? $opt{identify}
        : 'client_guard_identify $http_x_client_id;', 0);
    push @server, _block($opt{server}, 0), '',
        'location / {',
        _block(defined $opt{location} ? $opt{location} : 'empty_gif;', 4),
        '}';
    if ($opt{status}) {
        my $params = $opt{status} eq '1' ? '' : " $opt{status}";
        push @server, '', 'location /status {', '    client_guard off;',
            "    client_guard_status$params;", '}';
    }
    push @server, '', _block($opt{locations}, 0) if $opt{locations};

    return join '', map { length ? "    $_\n" : "\n" } @http, '', 'server {',
        (map { length ? "    $_" : '' } @server), '}';
}

# the lines of a text block, its common indentation replaced by $indent
# spaces; () for none
sub _block {
    my ($text, $indent) = @_;
    return () unless defined $text && $text =~ /\S/;
    my @lines = split /\n/, $text;
    shift @lines while $lines[0] !~ /\S/;
    pop @lines while $lines[-1] !~ /\S/;
    my ($min) = sort { $a <=> $b }
        map { /^( *)/; length $1 } grep { /\S/ } @lines;
    return map { /\S/ ? ' ' x $indent . substr($_, $min) : '' } @lines;
}

sub expand {
    my ($self, $text) = @_;
    $text =~ s/%%PORT%%/$self->port(0)/ge;
    $text =~ s/%%PORT(\d+)%%/$self->port($1)/ge;
    $text =~ s/%%REDIS_PORT(\d*)%%/$self->redis_port($1 || 0)/ge;
    $text =~ s/%%TESTDIR%%/$self->{dir}/g;
    $text =~ s/%%MODULE%%/$MODULE/g;
    return $text;
}

# nginx_test_conf($http_block, %opt): write_conf, then `nginx -t`.
# Returns (exit code, combined output). Messages it prints are not counted
# as alerts by the log check.
sub nginx_test_conf {
    my ($self, $http, %opt) = @_;
    $self->write_conf($http, %opt);
    my ($rc, $out) = _capture($self->_nginx_env, $NGINX, '-t',
        '-p', "$self->{dir}/", '-c', 'nginx.conf', '-e', 'error.log');
    $self->{expected}{$1} = 1 while $out =~ /^nginx: \[\w+\] (.+)$/mg;
    return ($rc, $out);
}

# --- nginx processes ----------------------------------------------------------

# what every nginx of the test runs with: ASan's library and options, and
# what start(env => ...) added (LD_PRELOAD before ASan's, which then lets
# another library come first: libfaketime hangs after it)
sub _nginx_env {
    my ($self) = @_;
    my %env;
    if ($ASAN) {
        unless ($LIBASAN) {
            chomp($LIBASAN = `gcc -print-file-name=libasan.so`);
            die "CG: libasan not found (gcc)\n"
                unless $LIBASAN && -e $LIBASAN;
        }
        my $adir = "$self->{dir}/asan";
        mkdir $adir;
        chmod 0777, $adir;
        %env = (
            LD_PRELOAD => $LIBASAN,
            # detect_odr_violation=0: an ASan nginx binary and module both
            # define ngx_modules/ngx_module_names, by nginx's design
            ASAN_OPTIONS => 'detect_leaks=0:abort_on_error=1:'
                . 'disable_coredump=1:detect_odr_violation=0:'
                . "log_path=$adir/asan",
        );
    }
    for my $k (keys %{$self->{env} || {}}) {
        if ($k eq 'LD_PRELOAD' && $env{$k}) {
            $env{$k} = "$self->{env}{$k} $env{$k}";
            $env{ASAN_OPTIONS} .= ':verify_asan_link_order=0';
        } else {
            $env{$k} = $self->{env}{$k};
        }
    }
    return \%env;
}

# start(%opt): runs nginx (daemon off, child of this process); waits for the
# pid file, every worker and every IPv4 port it listens on. Dies with the
# logs if nginx exits or does not come up. env => { NAME => value } adds to
# nginx's environment, for this start and later (_nginx_env).
sub start {
    my ($self, %opt) = @_;
    my $dir = $self->{dir};
    die "CG: nginx already running\n" if $self->{nginx};
    die "CG: write_conf first\n" unless defined $self->{conf};

    $self->{env} = $opt{env} if $opt{env};
    unlink "$dir/nginx.pid";
    $self->{log_at_start} = -s "$dir/error.log" || 0;
    my $pid = _spawn($self->_nginx_env, "$dir/stderr.log", $NGINX,
        '-p', "$dir/", '-c', 'nginx.conf', '-e', 'error.log');
    $self->{nginx} = $pid;
    $self->{ever_started} = 1;

    my @addrs;
    while ($self->{conf} =~ /^\s*listen\s+(?:([\d.]+|localhost|\*):)?(\d+)[\s;]/mg)
    {
        my ($host, $port) = ($1, $2);
        $host = '127.0.0.1' if !defined $host || $host !~ /^\d/;
        push @addrs, "$host:$port";
    }
    my $exited;
    my $up = wait_until(sub {
        if (waitpid($pid, WNOHANG) == $pid) {
            $exited = $?;
            return 1;
        }
        my $p = _slurp("$dir/nginx.pid");
        return 0 unless defined $p && $p =~ /^$pid\b/;
        # every worker there (a test may count them at once)
        return 0 if $self->worker_pids < $self->{workers};
        for my $addr (@addrs) {
            IO::Socket::INET->new(PeerAddr => $addr, Proto => 'tcp')
                or return 0;
        }
        return 1;
    }, 10 * $SLOW);

    if (defined $exited || !$up) {
        my $why = defined $exited ? "exited with status $exited"
            : 'did not come up';
        $self->_kill_nginx unless defined $exited;
        delete $self->{nginx};
        my $asan = join '', map { _slurp($_) // '' } glob("$dir/asan/asan*");
        die "CG: nginx $why\n--- error.log:\n" . ($self->error_log // '')
            . "--- stderr:\n" . (_slurp("$dir/stderr.log") // '')
            . ($asan ? "--- asan:\n" . substr($asan, 0, 4000) : '') . "\n";
    }
    return $self;
}

sub nginx_pid { return $_[0]{nginx} }

# worker_pids(): pids of the master's worker processes (all => 1: also
# those shutting down after a reload).
sub worker_pids {
    my ($self, %opt) = @_;
    my @pids;
    for my $pid ($self->_children) {
        my $cmd = _slurp("/proc/$pid/cmdline") // '';
        next unless $cmd =~ /worker process/;
        next if !$opt{all} && $cmd =~ /shutting down/;
        push @pids, $pid;
    }
    return @pids;
}

sub _children {
    my ($self) = @_;
    my $master = $self->{nginx} or return ();
    opendir(my $dh, '/proc') or return ();
    my @pids;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = _slurp("/proc/$pid/stat") or next;
        push @pids, $pid if $stat =~ /^\d+ \(.*\) \S (\d+)/s
            && $1 == $master;
    }
    return sort { $a <=> $b } @pids;
}

# reload(): HUP, then waits until the new workers run and the old ones have
# exited or stopped accepting. Returns 1; returns 0 when nginx refused the new
# configuration (its [emerg] lines are then not counted as alerts).
sub reload {
    my ($self) = @_;
    my $master = $self->{nginx} or die "CG: nginx not running\n";
    my $log = "$self->{dir}/error.log";
    my %old = map { $_ => 1 } $self->worker_pids(all => 1);
    my $offset = -s $log || 0;

    kill 'HUP', $master;

    my $failed;
    my $ok = wait_until(sub {
        my $new = _slurp($log, $offset) // '';
        if ($new =~ /\[emerg\]/) {
            $failed = $new;
            return 1;
        }
        my @all = $self->worker_pids(all => 1);
        my @fresh = grep { !$old{$_} } $self->worker_pids;
        return 0 if @fresh < $self->{workers};
        for my $pid (grep { $old{$_} } @all) {
            my $cmd = _slurp("/proc/$pid/cmdline") // '';
            return 0 if $cmd !~ /shutting down/;
        }
        return 1;
    }, 10 * $SLOW);

    die "CG: reload did not complete\n--- error.log:\n"
        . (_slurp($log, $offset) // '') unless $ok;

    if (defined $failed) {
        $self->{expected}{_message($1)} = 1
            while $failed =~ /^(.*\[emerg\].*)$/mg;
        return 0;
    }
    sleep 0.05;     # old workers set their title just before closing sockets
    return 1;
}

# stop(): QUIT, waits up to 10 s (30 s under ASan), then TERM, then KILL.
# Returns the seconds nginx took to exit, and adds one test: no [alert],
# [crit], [emerg] (or AddressSanitizer report) in the logs since last check.
sub stop {
    my ($self, %opt) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $took;
    if ($self->{nginx}) {
        $took = $self->_kill_nginx($opt{timeout} || 10 * $SLOW);
        delete $self->{nginx};
    }
    $self->check_logs if $self->{ever_started};
    return $took;
}

sub _kill_nginx {
    my ($self, $timeout, $fast) = @_;
    my $pid = $self->{nginx};
    my @children = $self->_children;
    my $t0 = time;
    my $left = _terminate($pid, ($fast ? () : (['QUIT', $timeout || 5])),
                          ['TERM', 5], ['KILL', 5]);
    # workers of a killed master live on: end them too
    kill 'KILL', grep { (_slurp("/proc/$_/stat") // '') =~ /^\d+ \(nginx\)/ }
        @children;
    Test::More::diag("CG: nginx did not exit, killed") if $left;
    return time - $t0;
}

# signals a child in turn until it exits; returns 1 if it never did
sub _terminate {
    my ($pid, @steps) = @_;
    for my $step (@steps) {
        my ($sig, $timeout) = @$step;
        kill $sig, $pid;
        return 0 if wait_until(sub { waitpid($pid, WNOHANG) != 0 },
                               $timeout, 0.02);
    }
    return 1;
}

# check_logs(): the test stop() adds; may be called directly too.
sub check_logs {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $dir = $self->{dir};
    my $log = _slurp("$dir/error.log", $self->{log_checked}) // '';
    $self->{log_checked} += length $log;

    my @bad = grep { !$self->{expected}{_message($_)} }
        $log =~ /^(.*\[(?:alert|crit|emerg)\].*)$/mg;

    if ($ASAN && !$self->{asan_reported}) {
        my @reports = grep {
            (_slurp($_) // '') =~ /AddressSanitizer|LeakSanitizer/
        } "$dir/stderr.log", glob("$dir/asan/asan*");
        if (@reports) {
            my @lines = split /\n/, _slurp($reports[0]);
            splice(@lines, 40) if @lines > 40;
            push @bad, "$reports[0]:", @lines;
            push @bad, scalar(@reports) - 1 . " more report(s) in $dir/asan"
                if @reports > 1;
            $self->{asan_reported} = 1;
        }
    }

    if ($self->{alerts_ok}) {
        Test::More::note("allowed: $_") for @bad;
        @bad = ();
    }
    Test::More::ok(!@bad, 'no alerts in error.log')
        or Test::More::diag(join "\n", @bad);
    return !@bad;
}

sub _message {
    my ($line) = @_;
    $line =~ s/^.*?\[\w+\] (?:\d+#\d+: )?(?:\*\d+ )?//;
    return $line;
}

# allow_alerts(1): the log check passes even with alerts (it notes them).
sub allow_alerts { $_[0]{alerts_ok} = defined $_[1] ? $_[1] : 1 }

sub error_log { return _slurp("$_[0]{dir}/error.log") }

sub error_log_like {
    my ($self, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::like($self->error_log // '', $re,
                            $name || "error.log matches $re");
}

# wait_for_log(qr//, $timeout): true once error.log matches
sub wait_for_log {
    my ($self, $re, $timeout) = @_;
    return wait_until(sub { ($self->error_log // '') =~ $re },
                      ($timeout || 5) * $SLOW);
}

# wait_for_link($timeout = 5): true once the first worker has logged, since
# the last start(), that its Redis link is up. Until then a request that
# would ask Redis is decided by the failure policy: wait before a test's
# first request expects WAITED or LEASE.
sub wait_for_link {
    my ($self, $timeout) = @_;
    my $log = "$self->{dir}/error.log";
    return wait_until(sub {
        (_slurp($log, $self->{log_at_start} || 0) // '')
            =~ /client guard: redis \S+ is up/
    }, ($timeout || 5) * $SLOW);
}

# access_log(): the access log written with write_conf(access_log => 1);
# a list of lines in list context
sub access_log {
    my ($self) = @_;
    my $text = _slurp("$self->{dir}/access.log") // '';
    return wantarray ? split(/\n/, $text) : $text;
}

# --- HTTP -----------------------------------------------------------------------

# request($method, $path, \%headers, $body, %opt): HTTP::Tiny request to
# 127.0.0.1:port(0) (or $opt{port}); no keep-alive, no redirects followed.
# $path may be a full URL. %opt: port, timeout, https => 1 with cert/key
# (needs IO::Socket::SSL). Returns HTTP::Tiny's hashref: status, reason,
# headers (names lowercased), content; status 599 on a connection error.
sub request {
    my ($self, $method, $path, $headers, $body, %opt) = @_;
    my $port = $opt{port} || $self->port(0);
    my $scheme = $opt{https} ? 'https' : 'http';
    my $url = $path =~ m{^https?://} ? $path
        : "$scheme://127.0.0.1:$port$path";

    my %ssl;
    if ($url =~ /^https/) {
        %ssl = (verify_SSL => 0, SSL_options => {
            SSL_verify_mode => 0,
            ($opt{cert} ? (SSL_cert_file => $opt{cert},
                           SSL_key_file => $opt{key}) : ()),
        });
    }

    my $http = HTTP::Tiny->new(timeout => $opt{timeout} || 10 * $SLOW,
        max_redirect => 0, keep_alive => 0, agent => 'cg-test', %ssl);
    return $http->request($method, $url, {
        headers => $headers || {},
        (defined $body ? (content => $body) : ()),
    });
}

sub get {
    my ($self, $path, $headers, %opt) = @_;
    return $self->request('GET', $path, $headers, undef, %opt);
}

sub get_port {
    my ($self, $port, $path, $headers, %opt) = @_;
    return $self->request('GET', $path, $headers, undef, %opt,
                          port => $port);
}

# statuses($n, $path, \%headers, %opt): sends $n GETs over one keep-alive
# connection, returns { status => count } (599: connection errors).
sub statuses {
    my ($self, $n, $path, $headers, %opt) = @_;
    my $port = $opt{port} || $self->port(0);
    my $http = HTTP::Tiny->new(timeout => 10 * $SLOW, max_redirect => 0,
                               agent => 'cg-test');
    my %count;
    for (1 .. $n) {
        my $r = $http->get("http://127.0.0.1:$port$path",
                           { headers => $headers || {} });
        $count{$r->{status}}++;
    }
    return \%count;
}

# connect($port): a raw TCP connection (default port(0)), for hand-written
# requests and clients that go away early.
sub connect {
    my ($self, $port) = @_;
    my $s = IO::Socket::INET->new(Proto => 'tcp',
        PeerAddr => '127.0.0.1:' . ($port || $self->port(0)))
        or die "CG: connect: $!\n";
    return $s;
}

# --- redis ------------------------------------------------------------------------

# redis_start(%opt): starts redis-server on a free port (no persistence),
# waits for PING; returns the port. %opt: args => [extra server arguments],
# cluster => 1 (cluster-enabled, the bus on a port of its own),
# bind => another loopback address (127.0.0.2), port => a given port (the
# port of an instance on 127.0.0.1, for the same port on 127.0.0.2),
# tls => 1 or { clients => 'yes'|'no'|'optional' (tls-auth-clients,
# default 'no') }: the port is a TLS port (no plain one), its certificate
# server_cert() of openssl_ca(); redis_cli then speaks TLS to it (with a
# client certificate "redis-cli"), see redis_tls_cli.
# Instances are numbered from 0 in start order; the redis_* methods below
# take an instance index or a port, default the first instance.
sub redis_start {
    my ($self, %opt) = @_;
    my $i = @{$self->{redis}};
    my ($port, $bus);
    $port = $opt{port} || $self->port("redis$i");
    # the cluster bus on a port of its own (cluster-port, Redis 7), picked
    # as the others are: port + 10000 may be in the ephemeral range, where
    # any outgoing connection may hold it
    $bus = $self->port("redis${i}bus") if $opt{cluster};
    my $dir = "$self->{dir}/redis$i";
    mkdir $dir;

    my @args = ('--port', $port, '--bind', $opt{bind} || '127.0.0.1',
        '--save', '',
        '--appendonly', 'no', '--dir', $dir, '--logfile', "$dir/redis.log",
        '--daemonize', 'no', '--protected-mode', 'no');
    push @args, '--cluster-enabled', 'yes', '--cluster-port', $bus,
        '--cluster-config-file', "nodes-$port.conf" if $opt{cluster};
    my $cli = [];
    if (my $tls = $opt{tls}) {
        $tls = {} unless ref $tls;
        $self->{redis_cert} ||= [$self->server_cert];
        my ($crt, $key) = @{$self->{redis_cert}};
        s/^--port$/--tls-port/ for @args;
        push @args, '--port', 0, '--tls-cert-file', $crt, '--tls-key-file',
            $key, '--tls-ca-cert-file', $self->openssl_ca,
            '--tls-auth-clients', $tls->{clients} || 'no';
        $cli = $self->redis_tls_cli;
    }
    push @args, @{$opt{args} || []};

    my $pid = _spawn({}, "$dir/stderr.log", 'redis-server', @args);
    my $r = { port => $port, pid => $pid, dir => $dir, bus => $bus,
              args => \@args, host => $opt{bind}, cli => $cli };
    push @{$self->{redis}}, $r;
    $self->_redis_wait($r);
    return $port;
}

sub _redis_wait {
    my ($self, $r) = @_;
    my ($pid, $port, $dir) = @$r{qw(pid port dir)};
    my $up = wait_until(sub {
        die "CG: redis-server exited\n" . (_slurp("$dir/redis.log") // '')
            . (_slurp("$dir/stderr.log") // '')
            if waitpid($pid, WNOHANG) == $pid;
        if (@{$r->{cli} || []}) {
            my ($rc, $out) = _capture({}, 'redis-cli', '-p', $port,
                                      @{$r->{cli}}, 'PING');
            return $out =~ /^(?:PONG|NOAUTH|WRONGPASS)/m;
        }
        my $s = IO::Socket::INET->new(
            PeerAddr => ($r->{host} || '127.0.0.1') . ":$port")
            or return 0;
        print $s "PING\r\n";
        my $line = <$s>;
        # up: PONG, or a refusal when the test set a password
        return defined $line && $line =~ /^(?:\+PONG|-NOAUTH|-WRONGPASS)/;
    }, 10 * $SLOW);
    die "CG: redis-server did not come up\n" . (_slurp("$dir/redis.log")
        // '') unless $up;
}

# redis_cluster_start($masters, %opt): a Redis Cluster of $masters masters
# (default 3), each with opt replicas => N replicas (default 1), made by
# redis-cli --cluster create; cluster-node-timeout opt node_timeout (ms,
# default 1000: failovers within a test's time) and
# cluster-require-full-coverage no (a master lost stops only its slots);
# opt args => [more server arguments]. Waits for cluster_state:ok on every
# node; returns the ports (masters first, as redis-cli assigns them).
sub redis_cluster_start {
    my ($self, $n, %opt) = @_;
    $n ||= 3;
    my $replicas = $opt{replicas} // 1;
    my @args = ('--cluster-node-timeout', $opt{node_timeout} || 1000,
        '--cluster-require-full-coverage', 'no', @{$opt{args} || []});
    my @ports = map { $self->redis_start(cluster => 1, args => \@args) }
        1 .. $n * (1 + $replicas);
    my ($rc, $out) = _capture({}, 'redis-cli', '--cluster', 'create',
        (map { "127.0.0.1:$_" } @ports), '--cluster-replicas', $replicas,
        '--cluster-yes');
    die "CG: redis-cli --cluster create failed:\n$out" if $rc;
    wait_until(sub {
        for my $p (@ports) {
            my $info = $self->redis_cli({ port => $p }, 'cluster', 'info');
            return 0 unless $info =~ /cluster_state:ok/
                && $info =~ /cluster_known_nodes:(\d+)/ && $1 == @ports;
            # a replica that never synced is no candidate for a failover
            $info = $self->redis_cli({ port => $p }, 'info', 'replication');
            return 0 if $info =~ /role:slave/
                && $info !~ /master_link_status:up/;
        }
        return 1;
    }, 20 * $SLOW) or die "CG: redis cluster not ok\n";
    return @ports;
}

# redis_cluster_masters($port): { port of a master => [its slot ranges] },
# as CLUSTER NODES on $port says (failed masters left out).
sub redis_cluster_masters {
    my ($self, $port) = @_;
    my %m;
    for my $line ($self->redis_cli({ port => $port }, 'cluster', 'nodes')) {
        my @f = split ' ', $line;
        next unless @f >= 8 && $f[2] =~ /\bmaster\b/ && $f[2] !~ /fail/;
        my ($p) = $f[1] =~ /:(\d+)/;
        $m{$p} = [ @f[8 .. $#f] ];
    }
    return \%m;
}

sub _redis {
    my ($self, $which) = @_;
    my @all = @{$self->{redis}};
    $which = 0 unless defined $which;
    my ($r) = $which < 1024 ? ($all[$which])
        : grep { $_->{port} == $which } @all;
    die "CG: no redis instance '$which' (redis_start first)\n" unless $r;
    return $r;
}

# redis_port($i): port of instance $i (default 0); for a CG object made with
# new(redis_port => P) and no instance of its own: P.
sub redis_port {
    my ($self, $i) = @_;
    $i ||= 0;
    return $self->{ext_redis}
        if $i == 0 && !@{$self->{redis}} && $self->{ext_redis};
    return $self->_redis($i)->{port};
}

# redis_restart($which): starts a stopped instance again on its port and dir
# (its data is gone: no persistence); waits for PING.
sub redis_restart {
    my ($self, $which) = @_;
    my $r = $self->_redis($which);
    $self->redis_stop($which) if $r->{pid};
    $r->{pid} = _spawn({}, "$r->{dir}/stderr.log", 'redis-server',
                       @{$r->{args}});
    $self->_redis_wait($r);
    return $r->{port};
}

sub redis_stop {
    my ($self, $which) = @_;
    my $r = $self->_redis($which);
    return unless $r->{pid};
    kill 'CONT', $r->{pid};
    _terminate($r->{pid}, ['TERM', 5 * $SLOW], ['KILL', 5]);
    delete $r->{pid};
}

# redis_pause / redis_resume: SIGSTOP / SIGCONT (redis hangs, sockets stay)
sub redis_pause { my $r = $_[0]->_redis($_[1]); kill 'STOP', $r->{pid} }
sub redis_resume { my $r = $_[0]->_redis($_[1]); kill 'CONT', $r->{pid} }

# redis_cli([{ port => P, host => H },] @args): runs redis-cli -p PORT @args against
# the first instance (or P); returns stdout without its trailing newlines,
# or in list context its lines (a nil or empty value is an empty line).
sub redis_cli {
    my ($self, @args) = @_;
    my $opt = ref $args[0] eq 'HASH' ? shift @args : {};
    my $port = $opt->{port} || $self->redis_port;
    my ($r) = grep { $_->{port} == $port } @{$self->{redis}};
    unshift @args, @{$r->{cli}} if $r && $r->{cli};
    unshift @args, '-h', $opt->{host} if $opt->{host};
    # cluster => 1: redis-cli -c (follows MOVED)
    open(my $fh, '-|', 'redis-cli', '-p', $port, ($opt->{cluster} ? '-c' : ()),
        @args)
        or die "CG: redis-cli: $!\n";
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    if (wantarray) {
        my @lines = split /\n/, $out, -1;
        pop @lines if @lines && $lines[-1] eq '';
        return @lines;
    }
    $out =~ s/\n+\z//;      # error replies end with an empty line
    return $out;
}

# --- fake servers -------------------------------------------------------------

# fake_server($port, sub { my ($sock) = @_; ... }): listens on
# 127.0.0.1:$port in a child process and runs the handler in a new process
# for each connection (an endpoint that never answers, closes, etc.; for
# Redis, t/lib/FaultProxy.pm: faults around a real redis-server, never an
# imitation of it). Stopped at stop_fake_servers() / cleanup. Returns the
# server's pid.
sub fake_server {
    my ($self, $port, $handler) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
        Listen => 128, ReuseAddr => 1, Proto => 'tcp')
        or die "CG: fake_server: listen $port: $!\n";
    my $pid = fork;
    die "CG: fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        setpgrp(0, 0);
        $SIG{CHLD} = 'IGNORE';
        $SIG{PIPE} = 'IGNORE';
        while (1) {
            my $c = $srv->accept or next;
            my $k = fork;
            if (defined $k && $k == 0) {
                close $srv;
                $c->autoflush(1);
                eval { $handler->($c) };
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    close $srv;
    push @{$self->{daemons}}, $pid;
    return $pid;
}

sub stop_fake_servers {
    my ($self) = @_;
    while (my $pid = shift @{$self->{daemons}}) {
        kill 'KILL', -$pid;
        waitpid($pid, 0);
    }
}

# --- certificates ---------------------------------------------------------------

# openssl_ca(): a CA in DIR/ssl (EC P-256); returns the CA certificate path.
sub openssl_ca {
    my ($self) = @_;
    return $self->{ca} if $self->{ca};
    my $d = "$self->{dir}/ssl";
    mkdir $d;
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt',
        'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
        '-keyout', "$d/ca.key", '-out', "$d/ca.crt", '-subj', '/CN=cg-test-ca');
    return $self->{ca} = "$d/ca.crt";
}

# make_client_cert($cn): certificate with subject CN=$cn,O=example signed by
# the CA; returns (cert path, key path).
sub make_client_cert {
    my ($self, $cn, %opt) = @_;
    my $ca = $self->openssl_ca;
    my $d = "$self->{dir}/ssl";
    my $name = $opt{name} || $cn;
    my ($crt, $key, $csr, $ext) = map { "$d/$name.$_" } qw(crt key csr ext);
    _spew($ext, $opt{ext} || "basicConstraints=CA:FALSE\n"
        . "extendedKeyUsage=clientAuth\n");
    _openssl('req', '-new', '-newkey', 'ec', '-pkeyopt',
        'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', $key,
        '-out', $csr, '-subj', "/O=example/CN=$cn");
    _openssl('x509', '-req', '-in', $csr, '-CA', $ca, '-CAkey', "$d/ca.key",
        '-set_serial', int(rand(2**31)), '-days', '2', '-out', $crt,
        '-extfile', $ext);
    return ($crt, $key);
}

# server_cert(): (cert, key) for CN=localhost, IP 127.0.0.1, by the same CA
sub server_cert {
    my ($self) = @_;
    return $self->make_client_cert('localhost', name => 'server',
        ext => "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            . "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
}

# redis_tls_cli(): redis-cli's arguments for a TLS instance of redis_start
# (the CA, a client certificate CN=redis-cli)
sub redis_tls_cli {
    my ($self) = @_;
    $self->{redis_cli_cert} ||= [$self->make_client_cert('redis-cli')];
    my ($crt, $key) = @{$self->{redis_cli_cert}};
    return ['--tls', '--cacert', $self->openssl_ca, '--cert', $crt,
            '--key', $key];
}

sub _openssl {
    my ($rc, $out) = _capture({}, 'openssl', @_);
    die "CG: openssl @_[0 .. 1] failed:\n$out" if $rc;
}

# --- helpers ----------------------------------------------------------------------

# wait_until(sub { ... }, $timeout = 10, $interval = 0.05): polls until the
# sub returns true (returns that value) or the timeout passes (returns 0).
# Callable as CG::wait_until or $t->wait_until.
sub wait_until {
    shift if ref $_[0] && ref $_[0] ne 'CODE';
    my ($cond, $timeout, $interval) = @_;
    my $end = time + (defined $timeout ? $timeout : 10);
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return 0 if time > $end;
        sleep($interval || 0.05);
    }
}

# --- promtool and headless chromium (Debian: prometheus, chromium) --------

# promtool(): the promtool binary, '' when it is not installed.
sub promtool {
    my $promtool = `command -v promtool 2>/dev/null`;
    chomp $promtool;
    return $promtool;
}

# $t->promtool_check($text): "promtool check metrics" over $text (kept in the
# test dir); returns its exit status ($?) and what it printed.
sub promtool_check {
    my ($self, $text) = @_;
    my $f = "$self->{dir}/metrics-" . ++$self->{nmetrics} . '.txt';
    _spew($f, $text);
    my $promtool = promtool();
    my $out = `$promtool check metrics < $f 2>&1`;
    return ($?, $out);
}

# $t->promtool_ok($text, $name): one test, "promtool check metrics" accepts
# $text; skipped when promtool is not installed.
sub promtool_ok {
    my ($self, $text, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    unless (promtool()) {
        Test::More->builder->skip('promtool not installed');
        return 1;
    }
    my ($rc, $out) = $self->promtool_check($text);
    return Test::More::is($rc, 0, $name) || Test::More::diag($out);
}

# chromium(): the chromium binary, undef when it is not installed.
sub chromium {
    my ($chromium) = grep { -x } map { "/usr/bin/$_" }
        qw(chromium chromium-browser google-chrome);
    return $chromium;
}

# $t->chromium_run(@args): headless chromium with @args (a fresh profile in
# the test dir, at most 60 s); returns what it printed on stdout.
sub chromium_run {
    my ($self, @args) = @_;
    my $profile = "$self->{dir}/chromium-" . ++$self->{nchromium};
    my $cmd = join ' ', map { "'$_'" } chromium(), '--headless',
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--disable-dev-shm-usage',
        "--user-data-dir=$profile", @args;
    return scalar `timeout 60 $cmd 2>/dev/null`;
}

# $t->chromium_dom($path, $budget_ms = 3000): the DOM of
# http://127.0.0.1:port(0)$path after $budget_ms of virtual time.
sub chromium_dom {
    my ($self, $path, $budget) = @_;
    return $self->chromium_run('--virtual-time-budget=' . ($budget || 3000),
        '--dump-dom', 'http://127.0.0.1:' . $self->port(0) . $path);
}

sub _slurp {
    my ($file, $offset) = @_;
    open(my $fh, '<', $file) or return undef;
    seek($fh, $offset, 0) if $offset;
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

sub _spew {
    my ($file, $text) = @_;
    open(my $fh, '>', $file) or die "CG: write $file: $!\n";
    print $fh $text;
    close $fh or die "CG: write $file: $!\n";
}

# forks and execs @cmd with extra %$env, stdin from /dev/null, stdout and
# stderr to $out; returns the pid
sub _spawn {
    my ($env, $out, @cmd) = @_;
    my $pid = fork;
    die "CG: fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        # a test killed by SIGKILL takes nginx (its master stops the
        # workers) and redis-server along
        _parent_death_signal('TERM');
        @ENV{keys %$env} = values %$env;
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $out) or POSIX::_exit(127);
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    return $pid;
}

# runs @cmd with extra %$env; returns (exit code, stdout + stderr)
sub _capture {
    my ($env, @cmd) = @_;
    my $pid = open(my $fh, '-|');
    die "CG: fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        @ENV{keys %$env} = values %$env;
        open(STDIN, '<', '/dev/null');
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($rc, $out);
}

# --- cleanup ------------------------------------------------------------------------

# cleanup(): stops every process of this object without adding tests; runs
# from DESTROY and at exit.
sub cleanup {
    my ($self) = @_;
    return if $self->{owner} != $$ || $self->{cleaned}++;
    local ($?, $!, $@);
    if ($self->{nginx}) {
        # a test that died or was interrupted: no graceful shutdown
        $self->_kill_nginx(5, $DYING);
        delete $self->{nginx};
        if (!$self->{alerts_ok}) {
            my $log = _slurp("$self->{dir}/error.log",
                             $self->{log_checked}) // '';
            Test::More::diag("CG: unchecked alert: $_")
                for $log =~ /^(.*\[(?:alert|crit|emerg)\].*)$/mg;
        }
    }
    $self->stop_fake_servers;
    for my $r (@{$self->{redis}}) {
        next unless $r->{pid};
        kill 'CONT', $r->{pid};
        _terminate($r->{pid}, ['TERM', 5], ['KILL', 5]);
    }
    if ($ENV{CG_KEEP} || !Test::More->builder->is_passing) {
        Test::More::diag("CG: kept $self->{dir}");
    } else {
        rmtree($self->{dir});
    }
    delete $LIVE{"$self"};
}

sub DESTROY { $_[0]->cleanup }

END {
    # a test that died (or BAIL_OUT, or exit with an error): stop at once
    $DYING = 1 if $?;
    stop_everything();
}

# --- several nodes on one Redis ---------------------------------------------

# $redis->nodes($n, $http, %opt): $n nginx nodes sharing this object's Redis
# (its first instance, or the redis_port it was made with), as the load
# balancers of one site: each a CG object of its own (ports, dir, logs)
# made with new(redis_port => ...), the same configuration written
# (write_conf($http, %opt): each names itself "node-PORT" to Redis), then
# all started. Returns the objects, node 1 first; the test waits for what
# it needs (wait_for_link, a first lease) and stops them.
sub nodes {
    my ($self, $n, $http, %opt) = @_;
    my $port = $self->redis_port;
    my @nodes = map { CG->new(redis_port => $port) } 1 .. $n;
    $_->write_conf($http, %opt) for @nodes;
    $_->start for @nodes;
    return @nodes;
}

# fan_out(\@nodes, sub { my ($t) = @_; ...; return { key => count } },
# $per_node = 2): runs the sub in $per_node children per node at once
# (fork_child); returns the counts summed over all of them (keys are
# words: statuses, or a test's own).
sub fan_out {
    my ($nodes, $work, $per_node) = @_;
    my @kids;
    for my $t (@$nodes) {
        for (1 .. ($per_node || 2)) {
            pipe(my $rd, my $wr) or die "CG: pipe: $!\n";
            my $pid = fork_child(sub {
                close $rd;
                my $c = $work->($t);
                print $wr join(',', map { "$_=$c->{$_}" } keys %$c);
                close $wr;
            });
            close $wr;
            push @kids, [$pid, $rd];
        }
    }
    my %total;
    for my $k (@kids) {
        my $line = do { local $/; readline $k->[1] } // '';
        wait_child($k->[0]);
        $total{$1} += $2 while $line =~ /(\w+)=(\d+)/g;
    }
    return \%total;
}

# --- child processes ----------------------------------------------------------
#
# Every process a test starts ends with the test, however it ends: done,
# die, BAIL_OUT, an uncaught exception, or SIGINT/SIGTERM/SIGHUP (from prove
# or a terminal). A survivor that holds the test's stdout makes prove wait
# for it forever. At the end (END, or a handler for those signals):
#   1. the children of fork_child/register_child (traffic generators, the
#      test's own servers) get SIGTERM, their process groups too, then
#      SIGKILL;
#   2. each CG object stops its nginx, fake servers and redis-servers (at
#      once with SIGTERM when the test died or was interrupted);
#   3. any process still below the test's (found through /proc: registered
#      or not, a child's children too) gets SIGKILL.
# Processes the harness starts also get a parent-death signal (Linux
# prctl): a test killed by SIGKILL takes them along.

# fork_child(sub { ... }): runs the sub in a child process of its own
# process group (a child's own children end with it), with the default
# signal dispositions; the child exits 0 when the sub returns, 1 when it
# dies (its message on stderr), never runs END blocks. Registered: stopped
# at the end of the test if it still runs. Returns the pid.
sub fork_child {
    my ($code) = @_;
    my $pid = fork;
    die "CG: fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        setpgrp(0, 0);
        _parent_death_signal('KILL');
        $SIG{$_} = 'DEFAULT' for @SIGNALS;
        %GROUPS = ();
        my $ok = eval { $code->(); 1 };
        print STDERR "CG: fork_child: $@" unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    $GROUPS{$pid} = 1;
    return $pid;
}

# register_child($pid): a child the test forked itself, stopped (with its
# process group when it leads one) at the end of the test if it still runs.
sub register_child { $GROUPS{$_[0]} = 1 }

# wait_child($pid): waits for a child of fork_child to exit by itself;
# returns its wait status ($?).
sub wait_child {
    my ($pid) = @_;
    waitpid($pid, 0);
    my $status = $?;
    delete $GROUPS{$pid};
    return $status;
}

# stop_child($pid, $signal = 'TERM'): signals a child of fork_child (and its
# process group), SIGKILL after 5 s; waits for it; returns its wait status.
sub stop_child {
    my ($pid, $sig) = @_;
    _stop_groups([$pid], $sig || 'TERM', 5 * $SLOW);
    waitpid($pid, 0);
    return $?;
}

# the children of @$pids, their groups: $sig, then KILL after $timeout
sub _stop_groups {
    my ($pids, $sig, $timeout) = @_;
    my @pids = grep { waitpid($_, WNOHANG) == 0 } @$pids;
    for my $step ([$sig, $timeout], ['KILL', 5]) {
        last unless @pids;
        for my $pid (@pids) {
            kill $step->[0], -$pid;     # its group, when it leads one
            kill $step->[0], $pid;
        }
        wait_until(sub {
            @pids = grep { waitpid($_, WNOHANG) == 0 } @pids;
            return !@pids;
        }, $step->[1], 0.02);
    }
    # the others of their groups, once the leader is gone
    kill 'KILL', -$_ for @$pids;
    delete @GROUPS{@$pids};
}

# stop_everything(): the end of the test (see above); runs from END and on
# SIGINT, SIGTERM, SIGHUP. In a child the test forked: only the objects the
# child made.
sub stop_everything {
    local ($?, $!, $@);
    if ($$ != $MAIN) {
        # a child that made CG objects of its own stops them
        $_->cleanup for grep { defined } values %LIVE;
        return;
    }
    return if $STOPPING;
    $STOPPING = 1;
    _stop_groups([keys %GROUPS], 'TERM', $DYING ? 1 : 2 * $SLOW);
    for my $t (grep { defined } values %LIVE) {
        $t->cleanup;
    }
    my @left = _descendants($$);
    if (@left) {
        Test::More::diag("CG: still running at the end, killed: "
            . join(', ', map { "$_->[0] ($_->[1])" } @left)) unless $DYING;
        kill 'KILL', map { $_->[0] } @left;
        # reap the test's own; wait a moment for the others to go
        wait_until(sub {
            1 while waitpid(-1, WNOHANG) > 0;
            return !grep { -e "/proc/$_->[0]" && !_zombie($_->[0]) } @left;
        }, 2, 0.02);
    }
    $STOPPING = 0;
}

# [pid, name] of every live process below $root (children, theirs, ...)
sub _descendants {
    my ($root) = @_;
    opendir(my $dh, '/proc') or return ();
    my (%kids, %name);
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = _slurp("/proc/$pid/stat") or next;
        my ($comm, $state, $ppid) = $stat =~ /^\d+ \((.*)\) (\S) (\d+)/s
            or next;
        next if $state eq 'Z' || $state eq 'X';
        push @{$kids{$ppid}}, $pid;
        $name{$pid} = $comm;
    }
    my @all;
    my @todo = ($root);
    while (defined(my $p = shift @todo)) {
        for my $k (@{$kids{$p} || []}) {
            push @all, [$k, $name{$k}];
            push @todo, $k;
        }
    }
    return @all;
}

sub _zombie {
    return ((_slurp("/proc/$_[0]/stat") // '') =~ /^\d+ \(.*\) ([ZX]) /s);
}

# the prctl system call's number here (known for the usual Linux machines,
# else from syscall.ph: slow to load, so once, not in each child); 0: none
my $PRCTL = $^O ne 'linux' ? 0 : do {
    require Config;
    my ($arch) = $Config::Config{archname} =~ /^([^-]+)/;
    my %known = (x86_64 => 157, aarch64 => 167, i386 => 172, i686 => 172);
    $known{$arch // ''} || eval {
        package CG::Sys;
        local $SIG{__WARN__} = sub {};
        require 'syscall.ph';
        CG::Sys::SYS_prctl();
    } || 0;
};

# a signal for this (just forked) process when its parent dies
sub _parent_death_signal {
    my ($sig) = @_;
    return unless $PRCTL;
    my %num = (TERM => 15, KILL => 9);
    syscall($PRCTL, 1, $num{$sig});     # PR_SET_PDEATHSIG
}

# SIGINT, SIGTERM, SIGHUP in the test: stop everything, then exit as
# interrupted. A child the test forked (sharing the handlers) dies by the
# signal as by default. Signals a test ignores (nohup, a background job)
# are left alone.
sub _on_signal {
    my ($sig) = @_;
    if ($$ != $MAIN) {
        $SIG{$sig} = 'DEFAULT';
        kill $sig, $$;
        return;
    }
    return if $STOPPING;            # a second one: the stop is under way
    $DYING = 1;
    Test::More::diag("CG: SIG$sig: stopping the test's processes");
    stop_everything();
    my %num = (INT => 2, TERM => 15, HUP => 1);
    exit(128 + $num{$sig});
}

for my $sig (@SIGNALS) {
    $SIG{$sig} = \&_on_signal
        if !defined $SIG{$sig} || $SIG{$sig} eq '' || $SIG{$sig} eq 'DEFAULT';
}

# --- Sentinel and DNS ---------------------------------------------------------

# sentinel_start($master_port, %opt): a redis-sentinel on a free loopback
# port (an instance like redis_start's: redis_stop, redis_cli { port },
# cleanup), monitoring master "mymaster" (name => N) at
# 127.0.0.1:$master_port with quorum 2 (quorum => Q), down-after-milliseconds
# 1000 (down_after => ms), failover-timeout 5000 (failover_timeout => ms),
# requirepass (password => P); it announces and binds 127.0.0.1; its writable config file is in its own
# directory. Returns the port.
sub sentinel_start {
    my ($self, $mport, %opt) = @_;
    my $i = @{$self->{redis}};
    my $port = $self->port("redis$i");
    my $dir = "$self->{dir}/sentinel$i";
    my $name = $opt{name} || 'mymaster';
    mkdir $dir;
    open(my $fh, '>', "$dir/sentinel.conf") or die "CG: sentinel.conf: $!\n";
    print $fh join("\n", "port $port", 'bind 127.0.0.1',
        'protected-mode no', 'daemonize no', "dir $dir",
        "logfile $dir/sentinel.log", 'sentinel announce-ip 127.0.0.1',
        "sentinel announce-port $port",
        "sentinel monitor $name 127.0.0.1 $mport " . ($opt{quorum} || 2),
        "sentinel down-after-milliseconds $name "
            . ($opt{down_after} || 1000),
        "sentinel failover-timeout $name " . ($opt{failover_timeout} || 5000),
        "sentinel parallel-syncs $name 1",
        $opt{password} ? "requirepass $opt{password}" : (), ''), "\n";
    close $fh;
    my @args = ("$dir/sentinel.conf", '--sentinel');
    my $pid = _spawn({}, "$dir/stderr.log", 'redis-server', @args);
    my $r = { port => $port, pid => $pid, dir => $dir, args => \@args };
    push @{$self->{redis}}, $r;
    $self->_redis_wait($r);
    return $port;
}

# dns_start(\%answers): a DNS responder on a free loopback UDP port (for
# nginx's "resolver 127.0.0.1:PORT"), answering A queries of the names in
# the file dns_set() writes (TTL 1 s); other names: NXDOMAIN; other types:
# no answer. Returns the port; stopped with the fake servers.
sub dns_start {
    my ($self, $answers) = @_;
    my $file = "$self->{dir}/dns.txt";
    $self->dns_set($answers || {});
    my $sock;
    for (1 .. 50) {
        my $p = 20000 + int(rand(30000));
        $sock = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$p",
                                      Proto => 'udp') and last;
    }
    die "CG: dns_start: no UDP port\n" unless $sock;
    my $port = $sock->sockport;
    my $pid = fork;
    die "CG: fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        setpgrp(0, 0);
        while (1) {
            my $from = $sock->recv(my $q, 512) or next;
            next if length $q < 17;
            my ($id, $flags) = unpack('n n', $q);
            my ($off, @labels) = (12);
            while ((my $l = ord substr($q, $off, 1)) && $off < length $q) {
                push @labels, substr($q, $off + 1, $l);
                $off += $l + 1;
            }
            my $qname = lc join('.', @labels);
            my ($type) = unpack('n', substr($q, $off + 1, 2));
            my $question = substr($q, 12, $off + 5 - 12);
            my %map;
            if (open(my $fh, '<', $file)) {
                while (<$fh>) {
                    my ($n, @ips) = split;
                    $map{lc $n} = \@ips if defined $n;
                }
            }
            my @ips = $type == 1 ? @{$map{$qname} || []} : ();
            my $rcode = exists $map{$qname} ? 0 : 3;
            my $r = pack('n n n n n n', $id, 0x8180 | ($flags & 0x0100)
                             | $rcode, 1, scalar @ips, 0, 0) . $question;
            $r .= pack('n n n N n C4', 0xc00c, 1, 1, 1, 4, split /\./)
                for @ips;
            $sock->send($r, 0, $from);
        }
    }
    close $sock;
    push @{$self->{daemons}}, $pid;
    return $port;
}

# dns_set({ name => [ip, ...], ... }): what the DNS responder answers now
sub dns_set {
    my ($self, $answers) = @_;
    my $file = "$self->{dir}/dns.txt";
    open(my $fh, '>', "$file.new") or die "CG: dns: $!\n";
    print $fh "$_ @{$answers->{$_}}\n" for sort keys %$answers;
    close $fh;
    rename "$file.new", $file or die "CG: dns: $!\n";
}

1;
