#!/usr/bin/perl
# Status endpoint, Prometheus text 0.0.4 and OpenMetrics: the families and
# their samples (request times as a histogram: cumulative buckets, +Inf the
# count; upstream times as sum and count; errors by class; the detector's
# flags, ratios, baselines and young clients), every client in a scrape by
# default (JSON keeps 100; limit= in the query or the directive bounds
# both), checked with promtool (0.0.4) and by the rules of OpenMetrics
# (t/41's own checker: # EOF, counter families without _total, histograms),
# then scraped once by a real Prometheus, which negotiates OpenMetrics and
# parses it strictly.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Time::HiRes qw(sleep time);
use CG;

my $t = CG->new();

# an upstream that takes 0.3 s: those answers land in le="0.5"
$t->fake_server($t->port(1), sub {
    my ($c) = @_;
    my $req = '';
    while (sysread($c, my $buf, 4096)) {
        $req .= $buf;
        last if $req =~ /\r\n\r\n/;
    }
    sleep 0.3;
    print $c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
        . "Connection: close\r\n\r\nok";
});

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['team-a rate=100r/s burst=9 quota=1000/h'],
    status => 1,
    http => q{log_format accept '$request_uri "$http_accept"';},
    locations => <<'EOF'));
    location /slow {
        proxy_pass http://127.0.0.1:%%PORT1%%;
    }

    location /nope {
        # a 404 from the static module, after the access phase
        root %%TESTDIR%%/none;
    }

    location /boom {
        error_page 404 =500 /500.gif;
        root %%TESTDIR%%/none;
    }

    location = /500.gif {
        empty_gif;
    }

    location /scrape {
        client_guard off;
        client_guard_status;
        access_log %%TESTDIR%%/scrape.log accept;
    }

    location /status5 {
        client_guard off;
        client_guard_status limit=5;
    }
EOF

$t->start();

$t->get('/', { 'X-Client-Id' => 'team-a' }) for 1 .. 7;
$t->get('/', { 'X-Client-Id' => 'team-b' }) for 1 .. 3;
$t->get('/x', { 'X-Client-Id' => 'team-b' });
$t->get('/');
$t->get('/slow', { 'X-Client-Id' => 'team-c' }) for 1 .. 2;
$t->get('/nope', { 'X-Client-Id' => 'team-c' });
$t->get('/boom', { 'X-Client-Id' => 'team-c' });

# more clients than JSON shows by default
my $MORE = 120;
$t->get('/', { 'X-Client-Id' => "c-$_" }) for 1 .. $MORE;
my $ALL = $MORE + 4;

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
like($m, qr/^# TYPE clientguard_request_rate gauge$/m, 'rates are gauges');
unlike($m, qr/^[^#].*_total\{[^\n]*\} \d+\.\d+$/m, 'counters are integers');
unlike($m, qr/# EOF/, 'no # EOF in 0.0.4');
like($m, qr/^clientguard_node_info\{node="[^"]+"\} 1$/m, 'node_info');
like($m, qr/^clientguard_anomaly_threshold_ratio 2\.500$/m,
    'the detector\'s settings');

# request times: a histogram per client, in seconds

like($m, qr/^# TYPE clientguard_request_duration_seconds histogram$/m,
    'request_duration_seconds is a histogram');
unlike($m, qr/clientguard_request_time_seconds|quantile=/,
    'no summary with a p99 left');

sub samples {
    my ($text, $name, $client) = @_;
    my @v;
    while ($text =~ /^\Q$name\E\{zone="cg",client="\Q$client\E"(,[^}]*)?\} (\S+)$/mg) {
        push @v, [ $1 // '', $2 ];
    }
    return @v;
}

my @b = samples($m, 'clientguard_request_duration_seconds_bucket', 'team-c');
is_deeply([ map { $_->[0] =~ /le="([^"]+)"/ ? $1 : '?' } @b ],
    [ qw(0.001 0.002 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1.0 2.5 +Inf) ],
    'buckets: le in seconds, canonical, +Inf last');
my %le = map { ($_->[0] =~ /le="([^"]+)"/)[0] => $_->[1] } @b;
is($le{'0.25'}, 2, 'the fast answers (404, 500) at or below 0.25 s');
is($le{'0.5'}, 4, 'the slow ones up to 0.5 s: the buckets are running sums');
is($le{'+Inf'}, 4, '+Inf: every answer');
my ($count) = map { $_->[1] }
    samples($m, 'clientguard_request_duration_seconds_count', 'team-c');
my ($sum) = map { $_->[1] }
    samples($m, 'clientguard_request_duration_seconds_sum', 'team-c');
is($count, 4, '_count is the +Inf bucket');
ok($sum >= 0.6 && $sum < 2, "_sum in seconds ($sum)");
like($m, qr/^clientguard_request_duration_seconds_count\{zone="cg",client="team-a"\} 7$/m,
    'request time count of team-a');

like($m, qr/^# TYPE clientguard_upstream_duration_seconds summary$/m,
    'upstream times: a summary of sum and count');
like($m, qr/^clientguard_upstream_duration_seconds_count\{zone="cg",client="team-c"\} 2$/m,
    'upstream count');
my ($usum) = map { $_->[1] }
    samples($m, 'clientguard_upstream_duration_seconds_sum', 'team-c');
ok($usum >= 0.6 && $usum < 2, "upstream _sum in seconds ($usum)");

# errors by class, and the detector

my %err = map { $_->[0] => $_->[1] }
    samples($m, 'clientguard_error_rate', 'team-c');
is_deeply([ sort keys %err ],
    [ ',status_class="4xx",window="10s"', ',status_class="4xx",window="5m"',
      ',status_class="5xx",window="10s"', ',status_class="5xx",window="5m"' ],
    'error_rate: 4xx and 5xx, over the detector\'s window and 5 minutes');
ok($err{',status_class="4xx",window="10s"'} > 0
   && $err{',status_class="5xx",window="10s"'} > 0, 'error_rate: 4xx, 5xx');

for my $type (qw(surge errors_4xx errors_5xx)) {
    like($m, qr/^clientguard_anomaly_flagged\{zone="cg",client="team-a",type="$type"\} 0$/m,
        "anomaly_flagged $type");
    like($m, qr/^clientguard_anomaly_ratio\{zone="cg",client="team-a",type="$type"\} 0\.00$/m,
        "anomaly_ratio $type: 0 while young");
}
like($m, qr/^clientguard_detector_young\{zone="cg",client="team-a"\} 1$/m,
    'a new client is young');
like($m, qr/^clientguard_detector_baseline_rate\{zone="cg",client="team-a"\} [\d.]+$/m,
    'detector_baseline_rate');
like($m, qr/^clientguard_detector_error_share\{zone="cg",client="team-c",status_class="5xx"\} 0\.[1-9]/m,
    'detector_error_share 5xx');
like($m, qr/^clientguard_detector_baseline_error_share\{zone="cg",client="team-c",status_class="4xx"\} [\d.]+$/m,
    'detector_baseline_error_share');

# every client in every per-client family, by default

my %fam;
for my $l (split /\n/, $m) {
    my ($f, $c) = $l =~ /^(\w+)\{zone="cg",client="([^"]+)"/ or next;
    $f =~ s/_(?:bucket|sum|count)$//;
    $fam{$f}{$c} = 1;
}
my @short = grep { scalar(keys %{ $fam{$_} }) != $ALL
                   && $_ !~ /^clientguard_quota_/ } sort keys %fam;
is(scalar(keys %{ $fam{clientguard_requests_total} }), $ALL,
    "every client by default ($ALL)");
is(scalar @short, 0, 'every client in every per-client family')
    or diag("short: @short");
is(scalar(keys %fam), 19, '19 per-client families') or diag(join ' ', sort keys %fam);
like($m, qr/^clientguard_clients_shown\{zone="cg"\} $ALL$/m, 'clients_shown');

my $j = decode_json($t->get('/status')->{content});
is($j->{clients_shown}, 100, 'JSON keeps its default of 100');

my $one = $t->get('/status?format=prometheus&limit=1')->{content};
my %clients = map { $_ => 1 } $one =~ /client="([^"]+)"/g;
is(scalar keys %clients, 1, 'limit=1: one client');
like($one, qr/^clientguard_clients_shown\{zone="cg"\} 1$/m,
    'limit=1: clients_shown 1');

my $five = $t->get('/status5?format=prometheus')->{content};
%clients = map { $_ => 1 } $five =~ /client="([^"]+)"/g;
is(scalar keys %clients, 5, 'the directive\'s limit=5 bounds Prometheus');
is(decode_json($t->get('/status5')->{content})->{clients_shown}, 5,
    '...and JSON');

my $alone = $t->get('/status?format=prometheus&client=team-c')->{content};
is_deeply([ sort keys %{{ map { $_ => 1 } $alone =~ /client="([^"]+)"/g }} ],
    ['team-c'], 'client=: that client only');

SKIP: {
    skip 'promtool not installed (Debian package prometheus)', 2
        unless CG::promtool();

    my ($rc, $out) = $t->promtool_check($m);
    is($rc, 0, 'promtool check metrics: no error') or diag($out);
    is($out, '', 'promtool check metrics: no lint warning') or diag($out);
}

# OpenMetrics, by its rules (promtool 2.42 reads only 0.0.4): the answer's
# problems, or none

sub openmetrics_problems {
    my ($text) = @_;
    my (@p, %type, %seen, $cur, %hist);

    return ('no "# EOF" line at the end') unless $text =~ s/^# EOF\n\z//m;
    push @p, 'a blank line' if $text =~ /^$/m;

    for my $l (split /\n/, $text) {
        if (my ($f, $ty) = $l =~ /^# TYPE (\w+) (\w+)$/) {
            push @p, "$f: TYPE twice" if $type{$f};
            push @p, "$f: a counter family named with _total"
                if $ty eq 'counter' && $f =~ /_total$/;
            push @p, "$f: unknown type $ty"
                unless $ty =~ /^(?:counter|gauge|histogram|summary|info)$/;
            $type{$f} = $ty;
            $cur = $f;
            next;
        }
        if ($l =~ /^# HELP (\w+) /) {
            push @p, "$1: HELP after its samples" if $seen{$1};
            next;
        }
        if ($l =~ /^#/) {
            push @p, "a comment: $l";
            next;
        }
        my ($name, $labels, $v) = $l =~ /^(\w+)(?:\{(.*)\})? (\S+)$/
            or push(@p, "not a sample: $l"), next;
        my $t = defined $cur ? $type{$cur} : '';
        my %ok = (counter => ['_total'], gauge => [''],
                  histogram => ['_bucket', '_sum', '_count'],
                  summary => ['', '_sum', '_count'], info => ['_info']);
        push(@p, "$name: not of the family above ("
             . ($cur // 'none') . ")"), next
            unless defined $cur
                   && grep { $name eq "$cur$_" } @{ $ok{$t} || [] };
        $seen{$cur} = 1;
        push @p, "$name: value $v" unless $v =~ /^-?\d+(?:\.\d+)?$/;
        push @p, "$name: an info's value is 1" if $t eq 'info' && $v ne '1';

        next unless $t eq 'histogram';
        (my $key = $labels // '') =~ s/,?le="[^"]*"//;
        my $h = $hist{"$cur\{$key\}"} ||= { le => [], n => [] };
        if ($name =~ /_bucket$/) {
            my ($le) = ($labels // '') =~ /le="([^"]*)"/;
            push @p, "$name\{$labels\}: le not a canonical float"
                unless defined $le
                       && $le =~ /^(?:\+Inf|\d+\.\d*[1-9]|\d+\.0)$/;
            push @{ $h->{le} }, $le;
            push @{ $h->{n} }, $v;
        } elsif ($name =~ /_count$/) {
            $h->{count} = $v;
        }
    }

    for my $k (sort keys %hist) {
        my $h = $hist{$k};
        my @le = map { $_ eq '+Inf' ? 9**9**9 : $_ } @{ $h->{le} };
        push @p, "$k: le not increasing"
            if grep { $le[$_] <= $le[$_ - 1] } 1 .. $#le;
        push @p, "$k: buckets not cumulative"
            if grep { $h->{n}[$_] < $h->{n}[$_ - 1] } 1 .. $#{ $h->{n} };
        push @p, "$k: no +Inf bucket last"
            unless @le && $h->{le}[-1] eq '+Inf';
        push @p, "$k: _count is not the +Inf bucket"
            unless defined $h->{count} && @le
                   && $h->{count} == $h->{n}[-1];
    }

    return @p;
}

$r = $t->get('/status?format=openmetrics');
like($r->{headers}{'content-type'}, qr{^application/openmetrics-text},
    'openmetrics content type');
my $om = $r->{content};
like($om, qr/^# TYPE clientguard_requests counter$/m,
    'OpenMetrics counter family without _total');
like($om, qr/^clientguard_requests_total\{/m,
    'OpenMetrics counter sample with _total');
like($om, qr/^# TYPE clientguard_request_duration_seconds histogram$/m,
    'OpenMetrics histogram');
like($om, qr/^# TYPE clientguard_node info$/m, 'OpenMetrics info family');
like($om, qr/\n# EOF\n\z/, '# EOF at the end');
my @p = openmetrics_problems($om);
is(scalar @p, 0, 'OpenMetrics: by its rules')
    or diag(join "\n", @p[0 .. ($#p > 9 ? 9 : $#p)]);
ok(openmetrics_problems("x_total 1\n# EOF\n")
   && openmetrics_problems("# TYPE x counter\nx 1\n# EOF\n")
   && openmetrics_problems("# TYPE x counter\nx_total 1\n")
   && openmetrics_problems("# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                           . "h_bucket{le=\"+Inf\"} 1\nh_count 1\n# EOF\n"),
   'the checker finds what is wrong');

my @om_samples = grep { !/^#/ } split /\n/, $om;

# a real Prometheus scrape

my $prom = `command -v prometheus 2>/dev/null`;
chomp $prom;

SKIP: {
    skip 'prometheus not installed (Debian package prometheus)', 8
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
    metrics_path: /scrape
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
            . $http->www_form_urlencode({ q => $_[0] }) =~ s/^q=//r);
        return undef unless $res->{success};
        my $j = eval { decode_json($res->{content}) } or return undef;
        return $j->{data}{result};
    };

    my ($up, $req);
    my $deadline = time() + 20 * CG::slow();
    while (time() < $deadline) {
        $up = $q->('up{job="clientguard"}');
        if ($up && @$up && $up->[0]{value}[1] eq '1') {
            $req = $q->('clientguard_requests_total{client="team-a"}');
            last if $req && @$req;
        }
        sleep 0.3;
    }

    ok($up && @$up && $up->[0]{value}[1] eq '1', 'Prometheus: target up')
        or diag(`tail -20 $dir/prometheus.log`);
    ok($req && @$req, 'Prometheus: clientguard_requests_total scraped');
    is($req && @$req ? $req->[0]{value}[1] : undef, '7',
        'Prometheus: value for team-a');

    my $rate = $q->('clientguard_request_rate{window="10s"}');
    ok($rate && @$rate >= 3, 'Prometheus: gauges scraped');

    my $n = $q->('scrape_samples_scraped{job="clientguard"}');
    is($n && @$n ? $n->[0]{value}[1] : undef, scalar @om_samples,
        'Prometheus: every sample of the OpenMetrics answer taken');

    my $p99 = $q->('histogram_quantile(0.99, sum by (le) '
                   . '(clientguard_request_duration_seconds_bucket'
                   . '{client="team-c"}))');
    ok($p99 && @$p99 && $p99->[0]{value}[1] > 0.25
       && $p99->[0]{value}[1] <= 0.5,
       'Prometheus: histogram_quantile over the buckets')
        or diag(explain($p99));

    my $tg = $http->get("http://127.0.0.1:$pport/api/v1/targets");
    my $tj = eval { decode_json($tg->{content}) } || {};
    my ($target) = @{ $tj->{data}{activeTargets} || [] };
    is($target && $target->{lastError}, '', 'Prometheus: no scrape error');

    open my $lf, '<', "$dir/scrape.log" or die $!;
    my ($seen) = <$lf>;
    like($seen // '', qr{"application/openmetrics-text},
        'Prometheus asked for OpenMetrics');

    kill 'TERM', $pid;
    waitpid($pid, 0);
}

$t->stop();
done_testing();
