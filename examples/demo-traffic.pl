#!/usr/bin/perl

# Steady example traffic from a few teams against a client_guard server,
# with a per-team summary (passed vs 429) every few seconds.
#
#   perl examples/demo-traffic.pl [--port 8080] [--seconds N] [--every 3]
#
# Stops after --seconds (0: never) or on Ctrl-C / SIGTERM, printing totals.
# Core Perl only.

use strict;
use warnings;

use Getopt::Long;
use HTTP::Tiny;
use Time::HiRes qw(sleep time);

my $port = $ENV{DEMO_PORT} || 8080;
my $seconds = 0;
my $every = 3;
GetOptions('port=i' => \$port, 'seconds=f' => \$seconds,
           'every=f' => \$every) or die "usage: $0 [--port P] [--seconds N]\n";

# rate: requests per second sent; how each team identifies itself
my @teams = (
    { name => 'team-search', rate => 120, quota => '200r/s',
      headers => { 'X-Client-Id' => 'team-search' } },
    { name => 'team-web', rate => 30, quota => 'default 50r/s',
      headers => { 'X-Client-Id' => 'team-web' } },
    { name => 'team-batch', rate => 60, quota => '20r/s, sent at 3x',
      headers => { 'User-Agent' => 'team-batch/2.1' } },
    { name => 'anonymous', rate => 5, quota => 'default 50r/s',
      headers => {} },
);

$| = 1;
my $url = "http://127.0.0.1:$port/";
my $stop = 0;
$SIG{INT} = $SIG{TERM} = sub { $stop = 1 };

my $start = time;
for my $t (@teams) {
    $t->{http} = HTTP::Tiny->new(timeout => 5, agent => 'demo-traffic/1');
    $t->{next} = $start;
    $t->{$_} = 0 for qw(ok limited other ok_all limited_all other_all);
    printf "  %-12s %4d r/s  (quota %s)\n", $t->{name}, $t->{rate},
        $t->{quota};
}
print "\n";

my $report = $start + $every;

while (!$stop) {
    my $now = time;
    last if $seconds && $now - $start >= $seconds;

    if ($now >= $report) {
        summary($now - $start);
        $report += $every;
    }

    my ($t) = sort { $a->{next} <=> $b->{next} } @teams;
    if ($t->{next} > $now) {
        my $wait = $t->{next} - $now;
        $wait = $report - $now if $report - $now < $wait;
        sleep($wait) if $wait > 0;
        next;
    }

    # keep a steady rate: never catch up more than half a second
    $t->{next} = $now - 0.5 if $t->{next} < $now - 0.5;
    $t->{next} += 1 / $t->{rate};

    my $r = $t->{http}->get($url, { headers => $t->{headers} });
    if ($r->{status} =~ /^2/) {
        $t->{ok}++;
    } elsif ($r->{status} == 429) {
        $t->{limited}++;
        show_rejection($t, $r) unless $t->{shown}++;
    } else {
        $t->{other}++;
        warn "  $t->{name}: $r->{status} $r->{reason}"
            . ($r->{status} == 599 ? ": $r->{content}" : "\n")
            unless $t->{warned}++;
    }
}

summary(time - $start);
print "\ntotals:\n";
for my $t (@teams) {
    printf "  %-12s passed %6d   429 %6d   other %4d\n", $t->{name},
        map { $t->{"${_}_all"} } qw(ok limited other);
}

sub summary {
    my ($elapsed) = @_;
    printf "[%5.1fs]\n", $elapsed;
    for my $t (@teams) {
        my $n = $t->{ok} + $t->{limited} + $t->{other};
        printf "  %-12s sent %4d   passed %4d   429 %4d%s\n", $t->{name}, $n,
            $t->{ok}, $t->{limited},
            $t->{other} ? "   other $t->{other}" : '';
        for (qw(ok limited other)) {
            $t->{"${_}_all"} += $t->{$_};
            $t->{$_} = 0;
        }
    }
}

sub show_rejection {
    my ($t, $r) = @_;
    my $h = $r->{headers};
    my @show = grep { /^(ratelimit|retry-after)/ } sort keys %$h;
    print "  first 429 for $t->{name}"
        . (@show ? ': ' . join(', ', map {
            "$_: " . (ref $h->{$_} ? join(', ', @{$h->{$_}}) : $h->{$_})
        } @show) : '') . "\n";
}
