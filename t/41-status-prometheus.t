#!/usr/bin/perl
# Status endpoint, Prometheus text 0.0.4 and OpenMetrics: checked with
# promtool, then scraped once by a real Prometheus (which negotiates
# OpenMetrics) on loopback.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Time::HiRes qw(sleep time);
use CG;

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['team-a rate=100r/s burst=9 quota=1000/h'],
    status => 1));

$t->start();

$t->get('/', { 'X-Client-Id' => 'team-a' }) for 1 .. 7;
$t->get('/', { 'X-Client-Id' => 'team-b' }) for 1 .. 3;
$t->get('/x', { 'X-Client-Id' => 'team-b' });
$t->get('/');

my $r = $t->get('/status?format=prometheus');
is($r->{status}, 200, 'format=prometheus');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    'content type 0.0.4');

my $m = $r->{content};
like($m, qr/^clientguard_requests_total\{zone="cg",client="team-a"\} 7$/m,
    'requests_total team-a');
like($m, qr/^clientguard_requests_total\{zone="cg",client="unknown"\} 1$/m,
    'the fallback client is one bucket');
like($m, qr/^clientguard_responses_total\{zone="cg",client="team-b",status_class="2xx"\} 4$/m,
    'responses_total by status_class');
like($m, qr/^clientguard_outcomes_total\{zone="cg",client="team-a",outcome="passed"\} 7$/m,
    'outcomes_total');
like($m, qr/^clientguard_quota_remaining_requests\{zone="cg",client="team-a",limit="2",type="window",window_seconds="3600"\} 993\.000$/m,
    'quota remaining');
like($m, qr/^clientguard_request_time_seconds_count\{zone="cg",client="team-a"\} 7$/m,
    'request time summary count');
like($m, qr/^# TYPE clientguard_request_rate gauge$/m, 'rates are gauges');
unlike($m, qr/^[^#].*_total\{[^\n]*\} \d+\.\d+$/m, 'counters are integers');
unlike($m, qr/# EOF/, 'no # EOF in 0.0.4');

# bounded output: limit=
my $one = $t->get('/status?format=prometheus&limit=1')->{content};
my %clients = map { $_ => 1 } $one =~ /client="([^"]+)"/g;
is(scalar keys %clients, 1, 'limit=1: one client');

SKIP: {
    skip 'promtool not installed (Debian package prometheus)', 2
        unless CG::promtool();

    my ($rc, $out) = $t->promtool_check($m);
    is($rc, 0, 'promtool check metrics: no error') or diag($out);
    is($out, '', 'promtool check metrics: no lint warning') or diag($out);
}

$r = $t->get('/status?format=openmetrics');
like($r->{headers}{'content-type'}, qr{^application/openmetrics-text},
    'openmetrics content type');
like($r->{content}, qr/^# TYPE clientguard_requests counter$/m,
    'OpenMetrics counter family without _total');
like($r->{content}, qr/^clientguard_requests_total\{/m,
    'OpenMetrics counter sample with _total');
like($r->{content}, qr/\n# EOF\n\z/, '# EOF at the end');

# a real Prometheus scrape

my $prom = `command -v prometheus 2>/dev/null`;
chomp $prom;

SKIP: {
    skip 'prometheus not installed (Debian package prometheus)', 4
        unless $prom;

    my $dir = $t->dir;
    my $pport = $t->port(2);
    my $nport = $t->port(0);

    open my $fh, '>', "$dir/prometheus.yml" or die $!;
    print $fh <<"EOF";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: clientguard
    metrics_path: /status
    static_configs:
      - targets: ['127.0.0.1:$nport']
EOF
    close $fh;

    my $pid = fork();
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDOUT, '>', "$dir/prometheus.log";
        open STDERR, '>&', \*STDOUT;
        exec $prom, "--config.file=$dir/prometheus.yml",
            "--storage.tsdb.path=$dir/prom-data",
            "--web.listen-address=127.0.0.1:$pport",
            '--log.level=warn';
        exit 127;
    }

    my $http = HTTP::Tiny->new(timeout => 2);
    my $q = sub {
        my $res = $http->get("http://127.0.0.1:$pport/api/v1/query?query="
            . $_[0]);
        return undef unless $res->{success};
        my $j = eval { decode_json($res->{content}) } or return undef;
        return $j->{data}{result};
    };

    my ($up, $req);
    my $deadline = time() + 20 * CG::slow();
    while (time() < $deadline) {
        $up = $q->('up%7Bjob%3D%22clientguard%22%7D');
        if ($up && @$up && $up->[0]{value}[1] eq '1') {
            $req = $q->('clientguard_requests_total%7Bclient%3D%22team-a%22%7D');
            last if $req && @$req;
        }
        sleep 0.3;
    }

    ok($up && @$up && $up->[0]{value}[1] eq '1', 'Prometheus: target up')
        or diag(`tail -20 $dir/prometheus.log`);
    ok($req && @$req, 'Prometheus: clientguard_requests_total scraped');
    is($req && @$req ? $req->[0]{value}[1] : undef, '7',
        'Prometheus: value for team-a');

    my $rate = $q->('clientguard_request_rate%7Bwindow%3D%2210s%22%7D');
    ok($rate && @$rate >= 3, 'Prometheus: gauges scraped');

    kill 'TERM', $pid;
    waitpid($pid, 0);
}

$t->stop();
done_testing();
