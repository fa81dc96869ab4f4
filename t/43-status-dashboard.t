#!/usr/bin/perl
# The HTML dashboard, in headless Chromium against a live nginx: the page is
# self-contained (no external fetch); on first paint it shows the history
# the server keeps (step=1s here: 20 s of traffic are 20 steps, where a page
# polling by itself in 4 s of virtual time would have 2 or 3 points), the
# flagged client first and marked (a 6x surge after 14 steady steps), a
# young client as such, the deploy marker on the time axis, the rows and
# health figures as the JSON has them, quota use; without Redis the
# cluster toggle is disabled and ?scope=cluster falls back to this node;
# with Redis (when installed) the cluster view is drawn from the cluster's
# answer.  The incident banner: an incident opened and updated by POST, as
# ops do, shown with its state, text and expected recovery, marked on the
# chart, and gone from the banner once resolved.
# CG_SCREENSHOT=path also saves a screenshot there (docs/dashboard.png is
# made by bin/dashboard-screenshot).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);
use CG;

plan skip_all => 'chromium not installed (Debian package chromium)'
    unless CG::chromium();

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'cg:1m',
    http => 'client_guard_anomaly step=1s;',
    quotas => ['team-a rate=1000r/s burst=100 quota=1000/h',
               'team-b rate=1r/m burst=1'],
    status => 'deploy_token=dashboard-token',
    locations => <<'EOF'));
    location /nope {
        root %%TESTDIR%%/none;
    }
EOF

$t->start();

sub status {
    return decode_json($t->get('/status?' . ($_[0] || ''))->{content});
}

sub client {
    my ($j, $name) = @_;
    my ($c) = grep { $_->{name} eq $name } @{ $j->{clients} };
    return $c || {};
}

# "secs" seconds, once a second, the given [name, path, count] requests
# (over a keep-alive connection: a pass must fit in its second on a loaded
# machine too, or the rates are not the ones meant)
sub traffic {
    my ($secs, @who) = @_;
    my $end = time() + $secs;
    my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
    my $base = 'http://127.0.0.1:' . $t->port(0);
    while (time() < $end) {
        my $t0 = time();
        for my $w (@who) {
            $http->get($base . $w->[1],
                       { headers => { 'X-Client-Id' => $w->[0] } })
                for 1 .. $w->[2];
        }
        my $left = 1 - (time() - $t0);
        sleep $left if $left > 0;
    }
}

sub row {
    my ($dom, $name) = @_;
    my ($tr) = $dom =~ m{(<tr[^>]*data-client="\Q$name\E".*?</tr>)}s;
    return $tr || '';
}

sub cells { return $_[0] =~ m{<td[^>]*>(.*?)</td>}gs }

# 14 steady steps, a deploy, then the surge (6x) and a 404 storm, which go
# on in the background while the page is looked at, with "busy" (busier
# than the storm, not flagged); team-a stops after 5 more steps, so that
# its counts hold still

$t->get('/', { 'X-Client-Id' => 'team-b' }) for 1 .. 4;
traffic(14, ['surger', '/', 10], ['team-a', '/', 8], ['team-a', '/nope', 1],
        ['busy', '/', 20], ['breaker', '/', 5]);
is($t->request('POST', '/status?deploy=surger&note=v42',
    { Authorization => 'Bearer dashboard-token' })->{status}, 201,
    'deploy marker');

my $surge = CG::fork_child(sub {
    traffic(300, ['surger', '/', 60], ['busy', '/', 20],
            ['breaker', '/nope', 5]);
});

traffic(5, ['team-a', '/', 8], ['team-a', '/nope', 1]);

# the server's side of the story, for the page's to be compared with
my $j = status('history=1&sort=anomaly&limit=10');
my $sj = client($j, 'surger');
ok(@{ $sj->{anomalies} || [] }, 'the JSON flags the surge')
    or diag(explain $sj);
cmp_ok($sj->{history}{steps} || 0, '>=', 18, 'and has its history');

my $html = $t->get('/status?format=html')->{content};
unlike($html, qr{(?:src|href)\s*=\s*["']?(?:https?:)?//}i,
    'no external script, style or link');
unlike($html, qr{\@import|url\(\s*["']?(?:https?:)?//}i, 'no external CSS');
unlike($html, qr{fetch\(\s*["']https?:}, 'fetches only its own location');
like($html, qr{history=1&sort=anomaly}, 'asks for the history');

my $port = $t->port(0);
my $url = "http://127.0.0.1:$port/status?format=html";

my $dom = $t->chromium_run('--virtual-time-budget=4000', '--dump-dom', $url);

like($dom, qr/data-loaded="1"/, 'the page loaded the JSON');

# the rows, as the JSON has them (traffic stopped: the counts hold still)

my $ja = client($j, 'team-a');
my @cells = cells(row($dom, 'team-a'));
is($cells[0], 'team-a', 'name cell');
is($cells[4], $ja->{requests_total}, 'requests cell');
is($cells[5], $ja->{responses_by_class_total}{'2xx'}, '2xx cell');
is($cells[6], $ja->{responses_by_class_total}{'4xx'}, '4xx cell');
ok(($cells[2] // '') =~ /^\d+\.\d\d$/ && $cells[2] > 0, '1m rate cell');
like($cells[10] // '', qr/^\d+%<span class="bar">.*of 1000 left/,
    'quota use cell: utilisation, bar, what the binding limit has left');

my $b = row($dom, 'team-b');
my @bcells = cells($b);
is($bcells[8], 2, 'team-b rejected cell');
like($b, qr/class="near"/, 'team-b near its limit');
like($b, qr/0 of 2 left/, 'team-b: its binding limit used up');

like($dom, qr{clients tracked</div><div class="v">$j->{health}{clients_tracked}</div>},
    'health: clients tracked (the page asks for no favicon)');

# the history, from the server, on first paint

my ($sp) = $dom =~ m{(<path class="ln[^"]*"[^>]*data-client="surger"[^>]*>)};
my ($ap) = $dom =~ m{(<path class="ln[^"]*"[^>]*data-client="team-a"[^>]*>)};
my ($np) = ($sp // '') =~ /data-points="(\d+)"/;
cmp_ok($np // 0, '>=', 15, 'surger: the steps of the last minutes drawn');
my ($na) = ($ap // '') =~ /data-points="(\d+)"/;
cmp_ok($na // 0, '>=', 15, 'team-a too');

# flagged: first, marked, counted

like($sp // '', qr/class="ln hot"/, 'surger drawn as flagged');
unlike($ap // '', qr/hot/, 'team-a not');
my @order;
while ($dom =~ m{<tr(?: class="([^"]*)")? data-client="([^"]+)"}g) {
    my ($class, $name) = ($1 // '', $2);
    push @order, ($class =~ /\bflagged\b/ ? '!' : '') . $name;
}
is(join(',', grep { defined } @order[0 .. 2]), '!surger,!breaker,busy',
   'the flagged rows first (tinted), the surge first, then the busiest');
# (the page is UTF-8: the sign of times is the bytes of U+00D7)
like(row($dom, 'surger'), qr{<span class="flag surge"[^>]*>surge \xc3\x97\d},
    'its surge badge with the ratio');
my ($fl) = $dom =~ m{(<li data-client="surger">.*?</li>)}s;
like($fl // '', qr{surge .*against a baseline of .*since \d\d:\d\d:\d\d},
    'the flagged list: ratio, rates, since');
like(row($dom, 'breaker'), qr{<span class="flag errors_4xx"[^>]*>4xx \d+%},
    'the 404 storm: its 4xx share');
my ($fb) = $dom =~ m{(<li data-client="breaker">.*?</li>)}s;
like($fb // '', qr{\d+% of its answers are 4xx \(usually \d+%\).*since},
    'the flagged list: share, usual share, since');
like($dom, qr{<div class="card alarm"><div class="k">flagged clients</div><div class="v">2</div>},
    'the flagged clients card counts them');

# a new client: young for its first 9 steps (no complete baseline bin), at
# least 8 s after its first request.  A page drawn in that time marks it
# young; on a loaded machine chromium may take longer than that to fetch
# the JSON: a page not marking it then proves nothing, and a new client
# is tried (up to 3 times)
my $YOUNG = 8;
my ($young, @took);
for my $try (1 .. 3) {
    my $name = "newbie-$try";
    my $t0 = time();
    $t->get('/', { 'X-Client-Id' => $name }) for 1 .. 30;
    my $ydom = $t->chromium_run('--virtual-time-budget=4000', '--dump-dom',
                                $url);
    push @took, time() - $t0;
    $young = row($ydom, $name);
    last if $young =~ /class="flag young"/ || $took[-1] < $YOUNG;
}
like($young, qr/class="flag young"/, 'a new client: young')
    or diag('drawn within ' . join(', ', map { sprintf '%.1f s', $_ } @took)
            . ' of its first request');
unlike(row($dom, 'team-a'), qr{class="flag}, 'team-a: no flag');
like($dom, qr{<ol id="movers"><li>surger }, 'top movers');

# the deploy marker on the time axis, where the JSON puts it

my $dt = $j->{deploys}[0]{time_ms} // 'none';
like($dom, qr{<g class="mark deploy" data-time="$dt">.*?<text[^>]*>surger v42</text>}s,
    'deploy marker on the chart');
like($dom, qr{surger: v42</li>}, 'deploy marker listed');

# the focus chart: the flagged client's steps by outcome

my ($focus) = $dom =~ m{(<svg id="focus"[^>]*>)};
like($focus // '', qr{data-client="surger"}, 'focus on the flagged client');
my ($fs) = ($focus // '') =~ /data-steps="(\d+)"/;
cmp_ok($fs // 0, '>=', 15, 'focus: its steps');
like($dom, qr{<rect class="flagstep"}, 'focus: the flagged steps marked');

# no incident yet: no banner, and said so

like($dom, qr{<div id="incident"[^>]* hidden}, 'no incident: no banner');
like($dom, qr{<ul id="incidents"><li class="mute">none recorded},
    'incidents: none recorded');

# without Redis: no cluster view

like($dom, qr{<button[^>]*id="sc-cluster"[^>]*disabled}, 'cluster toggle disabled');
like($dom, qr{cluster view needs client_guard_redis}, 'and why');

my $cdom = $t->chromium_run('--virtual-time-budget=4000', '--dump-dom',
    "$url&scope=cluster");
like($cdom, qr/data-loaded="1"/, '?scope=cluster without Redis: loaded');
like($cdom, qr{id="sc-node" aria-pressed="true"}, 'as this node');
like(row($cdom, 'surger'), qr/class="flagged/, 'with its rows');

if ($ENV{CG_SCREENSHOT}) {
    $t->chromium_run('--virtual-time-budget=4000', '--window-size=1280,1000',
        "--screenshot=$ENV{CG_SCREENSHOT}", $url);
    ok(-s $ENV{CG_SCREENSHOT}, "screenshot $ENV{CG_SCREENSHOT}");
}

# the incident banner: an incident opened by POST, then updated

my %auth = (Authorization => 'Bearer dashboard-token');
my $r = $t->request('POST', '/status?incident=new&title=surger+%3Cflood%3E'
                    . '&text=a+deploy+of+surger+sends+6x&eta=15m', \%auth);
is($r->{status}, 201, 'an incident opened');
my $inc = decode_json($r->{content})->{incident};
my $opened = $inc->{time_ms};
$r = $t->request('POST', "/status?incident=$inc->{id}&state=identified",
                 \%auth);
is($r->{status}, 200, 'and updated: identified');

my $idom = $t->chromium_run('--virtual-time-budget=4000', '--dump-dom',
    $url);
my ($banner) = $idom =~ m{(<div id="incident"[^>]*>.*?</div>\s*<section)}s;
$banner //= '';
unlike($banner, qr{<div id="incident"[^>]* hidden}, 'incident banner shown');
like($banner, qr{class="st identified">identified</span><b>surger _flood_</b>},
    'state and title (as cleaned by the module)');
like($banner, qr{<p>a deploy of surger sends 6x</p>}, 'description');
like($banner, qr{since \d\d:\d\d \(\d+ s\)}, 'since');
like($banner, qr{expected recovery \d\d:\d\d \(in 1[45] min},
     'expected recovery');
like($idom, qr{<g class="mark incident" data-time="$opened">},
    'incident marker on the chart');
like($idom, qr{<rect class="iband"}, 'and its span');

# resolved: no banner, listed as resolved
$r = $t->request('POST', "/status?incident=$inc->{id}&state=resolved",
                 \%auth);
is($r->{status}, 200, 'resolved');
$idom = $t->chromium_run('--virtual-time-budget=4000', '--dump-dom', $url);
like($idom, qr{<div id="incident"[^>]* hidden}, 'resolved: no banner');
like($idom, qr{resolved: surger _flood_</li>}, 'listed as resolved');

CG::stop_child($surge);
$t->stop();

# with Redis: the cluster toggle works, and the cluster's answer is drawn

SKIP: {
    skip 'redis-server not installed', 8
        unless `command -v redis-server 2>/dev/null`;

    my $r = CG->new();
    $r->redis_start();
    $r->write_conf(CG::http(redis => 1,
        http => "client_guard_anomaly step=1s;\n"
              . 'client_guard_status_publish interval=300ms;',
        status => 1));
    $r->start();
    $r->get('/', { 'X-Client-Id' => 'team-c' }) for 1 .. 7;
    ok(CG::wait_until(sub {
        my $x = $r->get('/status?scope=cluster');
        return $x->{status} == 200
            && (client(decode_json($x->{content}), 'team-c')
                ->{requests_total} // 0) == 7;
    }, 10), 'the cluster view has team-c');

    my $u = 'http://127.0.0.1:' . $r->port(0) . '/status?format=html';
    my $d = $r->chromium_run('--virtual-time-budget=4000', '--dump-dom', $u);
    unlike($d, qr{<button[^>]*id="sc-cluster"[^>]*disabled},
        'with Redis: cluster toggle enabled');
    $d = $r->chromium_run('--virtual-time-budget=4000', '--dump-dom',
        "$u&scope=cluster");
    like($d, qr{id="sc-cluster" aria-pressed="true"}, 'the cluster view');
    like($d, qr{cluster of 1 node\(s\), seen from}, 'says so');
    my @c = cells(row($d, 'team-c'));
    is($c[4], 7, 'team-c row from the cluster');

    # Redis gone: the cluster view answers 503, the page shows this node
    $r->redis_stop();
    CG::wait_until(sub {
        $r->get('/status?scope=cluster&limit=0')->{status} == 503 });
    $d = $r->chromium_run('--virtual-time-budget=4000', '--dump-dom',
        "$u&scope=cluster");
    like($d, qr{cluster view unavailable \(HTTP 503: no ready Redis link\): showing this node},
        'Redis down: the cluster view unavailable, said so');
    @c = cells(row($d, 'team-c'));
    is($c[4], 7, 'and this node shown meanwhile');

    $r->stop();
}

done_testing();
