#!/usr/bin/perl
# The Prometheus rules that ship (examples/prometheus/): promtool accepts
# them and passes their unit tests (clientguard-rules.test.yml); every
# alert is tested firing, and has a severity, a summary, a description that
# names the client or the node, and a runbook; and what they read is real:
# every clientguard_ series the rules and their tests name is in a node's
# answer (with Redis, a quota, after its first publication), the tests'
# input series with the labels that answer gives them.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CPAN::Meta::YAML;
use CG;

my $dir = "$CG::ROOT/examples/prometheus";
my $promtool = CG::promtool();

plan skip_all => 'promtool not installed (Debian package prometheus)'
    unless $promtool;

sub yaml {
    my ($file) = @_;
    open my $fh, '<', "$dir/$file" or die "$file: $!";
    local $/;
    my $y = CPAN::Meta::YAML->read_string(<$fh>)
        or die "$file: " . CPAN::Meta::YAML->errstr;
    return $y->[0];
}

# promtool

my $out = `cd '$dir' && '$promtool' check rules clientguard-rules.yml 2>&1`;
is($?, 0, 'promtool check rules') or diag($out);
like($out, qr/SUCCESS: \d+ rules found/, 'promtool: the rules are found');

$out = `cd '$dir' && '$promtool' test rules clientguard-rules.test.yml 2>&1`;
is($?, 0, 'promtool test rules: the unit tests pass') or diag($out);

# the rules, and what their tests cover

my $rules = yaml('clientguard-rules.yml');
my $tests = yaml('clientguard-rules.test.yml');

my @rules = map { @{ $_->{rules} } } @{ $rules->{groups} };
my @alerts = grep { $_->{alert} } @rules;
my @records = grep { $_->{record} } @rules;

is_deeply([ sort map { $_->{alert} } @alerts ],
    [ sort qw(ClientGuardSurge ClientGuardErrorSpike4xx
              ClientGuardErrorSpike5xx ClientGuardNearQuota
              ClientGuardRejections ClientGuardRedisDown
              ClientGuardQuotaErrors ClientGuardZoneFull
              ClientGuardNodeDown ClientGuardNodeStale) ],
    'the alerts: surge, error spikes, quota, rejections, Redis, nodes');

my %fired;
my %tested_expr;
for my $tc (@{ $tests->{tests} }) {
    for my $a (@{ $tc->{alert_rule_test} || [] }) {
        $fired{ $a->{alertname} }++ if @{ $a->{exp_alerts} || [] };
    }
    $tested_expr{ $_->{expr} } = 1 for @{ $tc->{promql_expr_test} || [] };
}

for my $a (@alerts) {
    my $n = $a->{alert};
    ok($fired{$n}, "$n: a test sees it fire");
    like($a->{labels}{severity} // '', qr/^(?:warning|critical)$/,
        "$n: severity");
    my $an = $a->{annotations} || {};
    ok(($an->{summary} // '') ne '' && ($an->{runbook} // '') ne '',
        "$n: summary and runbook");
    like($an->{description} // '',
        qr/\{\{ \$labels\.(?:client|node|instance) \}\}/,
        "$n: the description names the client or the node");
}

ok($tested_expr{ $_->{record} }, "$_->{record}: tested")
    for @records;

# a node's answer: the families and their label names

my $t = CG->new();
$t->redis_start();
$t->write_conf(CG::http(
    zone => 'api:1m',
    quotas => ['team-a rate=100r/s burst=9 quota=1000/h'],
    redis => 1,
    status => 1,
    http => 'client_guard_status_publish interval=500ms;'));
$t->start();
$t->wait_for_link();

$t->get('/', { 'X-Client-Id' => 'team-a' }) for 1 .. 3;
$t->get('/', { 'X-Client-Id' => 'team-b' });

my $m;
ok($t->wait_until(sub {
    $m = $t->get('/status?format=prometheus')->{content};
    return $m =~ /^clientguard_status_publish_age_seconds [\d.]+$/m;
}, 10 * CG::slow()), 'a node after its first publication');

my %labels;         # sample name => { "label,names" => 1 }
for my $l (split /\n/, $m) {
    next if $l =~ /^#/;
    my ($name, $ls) = $l =~ /^(\w+)(?:\{([^}]*)\})? / or next;
    my @names = sort map { /^(\w+)=/ } split /,(?=\w+=")/, $ls // '';
    $labels{$name}{ join ',', @names } = 1;
}

# the series the rules read (their expressions and their templates)

my (%read, @missing);
for my $r (@rules) {
    my $text = join ' ', $r->{expr}, values %{ $r->{annotations} || {} };
    $read{$1} = 1 while $text =~ /(?<![\w:])(clientguard_\w+)(?![\w:])/g;
}

@missing = grep { !$labels{$_} } sort keys %read;
ok(keys %read > 15, scalar(keys %read) . ' series read by the rules');
is(scalar @missing, 0, 'every series the rules read is in the answer')
    or diag("missing: @missing");

# the tests' input series: the names and labels of the answer

my (@bad, $n);
for my $tc (@{ $tests->{tests} }) {
    for my $s (@{ $tc->{input_series} || [] }) {
        my ($name, $ls) = $s->{series} =~ /^(\w+)\{(.*)\}$/ or next;
        next if $name eq 'up';      # Prometheus's own
        my @names = sort grep { $_ ne 'instance' && $_ ne 'job' }
                         map { /^(\w+)=/ } split /,(?=\w+=")/, $ls;
        my $key = join ',', @names;
        $n++;
        push @bad, "$name\{$key\}"
            unless $labels{$name} && $labels{$name}{$key};
    }
}

ok($n > 50, "$n input series");
is(scalar @bad, 0, 'the tests feed the series a node answers')
    or diag("not as a node answers them: @bad");

$t->stop();
done_testing();
