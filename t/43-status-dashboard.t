#!/usr/bin/perl
# The HTML dashboard: self-contained (no external fetch), loaded in headless
# Chromium against a live nginx with traffic; the clients, their figures,
# flags, deploy markers and module health appear in the page.
# CG_SCREENSHOT=path also saves a screenshot there (docs/dashboard.png is
# made by bin/dashboard-screenshot, which lets traffic run for a while).

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

plan skip_all => 'chromium not installed (Debian package chromium)'
    unless CG::chromium();

my $t = CG->new();

$t->write_conf(CG::http(
    zone => 'cg:1m',
    quotas => ['team-a rate=1000r/s burst=100 quota=1000/h',
               'team-b rate=1r/m burst=1'],
    status => 'deploy_token=dashboard-token',
    locations => <<'EOF'));
    location /nope {
        root %%TESTDIR%%/none;
    }
EOF

$t->start();

$t->get('/', { 'X-Client-Id' => 'team-a' }) for 1 .. 40;
$t->get('/nope', { 'X-Client-Id' => 'team-a' }) for 1 .. 3;
$t->get('/', { 'X-Client-Id' => 'team-b' }) for 1 .. 4;
is($t->request('POST', '/status?deploy=team-a&note=v42',
    { Authorization => 'Bearer dashboard-token' })->{status}, 201,
    'deploy marker');

my $html = $t->get('/status?format=html')->{content};
unlike($html, qr{(?:src|href)\s*=\s*["']?(?:https?:)?//}i,
    'no external script, style or link');
unlike($html, qr{\@import|url\(\s*["']?(?:https?:)?//}i, 'no external CSS');
unlike($html, qr{fetch\(\s*["']https?:}, 'fetches only its own location');

my $port = $t->port(0);
my $url = "http://127.0.0.1:$port/status?format=html";

my $dom = $t->chromium_run('--virtual-time-budget=4000', '--dump-dom', $url);

like($dom, qr/data-loaded="1"/, 'the page loaded the JSON');
like($dom, qr{<tr[^>]*data-client="team-a"}, 'team-a row');
like($dom, qr{<tr[^>]*data-client="team-b"}, 'team-b row');

my ($a) = $dom =~ m{(<tr[^>]*data-client="team-a".*?</tr>)}s;
$a ||= '';
my @cells = $a =~ m{<td[^>]*>(.*?)</td>}gs;
is($cells[0], 'team-a', 'name cell');
is($cells[4], '43', 'requests cell');
is($cells[5], '40', '2xx cell');
is($cells[6], '3', '4xx cell');
ok($cells[1] =~ /^\d+\.\d\d$/ && $cells[1] > 0, 'rate cell');
like($cells[10] || '', qr/^\d+%/, 'quota use cell');

my ($b) = $dom =~ m{(<tr[^>]*data-client="team-b".*?</tr>)}s;
my @bcells = ($b || '') =~ m{<td[^>]*>(.*?)</td>}gs;
is($bcells[8], '2', 'team-b rejected cell');
like($b || '', qr/class="near"/, 'team-b near its limit');

like($dom, qr{clients tracked</div><div class="v">3</div>},
    'health: clients tracked');
like($dom, qr{team-a: v42}, 'deploy marker listed');
like($dom, qr{<canvas id="chart"}, 'chart canvas');
like($dom, qr{<div id="legend"><span>}, 'chart legend drawn');

if ($ENV{CG_SCREENSHOT}) {
    $t->chromium_run('--virtual-time-budget=4000', '--window-size=1280,1000',
        "--screenshot=$ENV{CG_SCREENSHOT}", $url);
    ok(-s $ENV{CG_SCREENSHOT}, "screenshot $ENV{CG_SCREENSHOT}");
}

$t->stop();
done_testing();
