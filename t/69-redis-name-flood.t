#!/usr/bin/perl
# A flood of names at the default quota (quota=1000000/d, as in issue 13)
# under Redis: a client with no quota of its own is counted on the node for
# its first "ahead" requests (8) and asks Redis nothing meanwhile, so a
# name seen a few times makes no key in Redis; Redis memory stays bounded
# by the names that sent 8 requests or more.  Those are charged every
# request they were admitted, and a team with its own quota is still held
# to it by Redis during the flood.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use CG;

my $t = CG->new();
$t->redis_start();

$t->write_conf(CG::http(
    zone => 'z:16m',
    quotas => ['default quota=1000000/d', 'team-v quota=20/m'],
    redis => 1,
    location => 'add_header X-Redis $client_guard_redis always; '
        . 'empty_gif;'));
$t->start();
ok($t->wait_for_link, 'the link is up');

sub info_memory {
    my ($line) = grep { /^used_memory:/ } $t->redis_cli('INFO', 'memory');
    return ($line // '') =~ /:(\d+)/ ? $1 : 0;
}

sub client_keys {
    my @k = $t->redis_cli('--scan', '--pattern', 'cg:{*');
    return grep { length } @k;
}

sub evalsha_calls {
    my ($line) = grep { /^cmdstat_evalsha:/ }
        $t->redis_cli('INFO', 'commandstats');
    return ($line // '') =~ /calls=(\d+)/ ? $1 : 0;
}

my $http = HTTP::Tiny->new(keep_alive => 1);
my $url = 'http://127.0.0.1:' . $t->port(0) . '/';

sub hit {
    my ($name) = @_;
    my $r = $http->get($url, { headers => { 'X-Client-Id' => $name } });
    return ($r->{status}, $r->{headers}{'x-redis'} // '-');
}

# --- 3,000 names, each seen 3 times -------------------------------------------

my $mem0 = info_memory();
my $calls0 = evalsha_calls();
my ($n, $bad, %how) = (3000, 0);

for my $round (1 .. 3) {
    for my $i (1 .. $n) {
        my ($status, $how) = hit("flood-$i");
        $bad++ if $status != 200;
        $how{$how}++;
    }
}

is($bad, 0, "3 x $n requests of $n names: all admitted");
is_deeply(\%how, { AHEAD => 3 * $n }, 'all counted on the node')
    or diag(explain \%how);

my @keys = client_keys();
is(scalar(@keys), 0, 'no key in Redis for any of them');

# what grew is the status publication (cg:stats:<node>, cg:history:<node>:
# a bounded number of rows, docs/status.md), not the lease keys
my @all = grep { length } $t->redis_cli('--scan', '--pattern', '*');
my $published = 0;
for my $k (grep { /^cg:(stats|history):/ } @all) {
    $published += $t->redis_cli('MEMORY', 'USAGE', $k) || 0;
}
my $grew = info_memory() - $mem0;
diag("keys in Redis: @all; memory +$grew bytes, $published of them in "
     . 'the status publication');
cmp_ok($grew - $published, '<', 256 * 1024, 'Redis memory did not grow '
       . 'with the names (' . ($grew - $published) . ' bytes besides the '
       . 'status publication)');
is(evalsha_calls() - $calls0, 0, 'and no lease script call');

# --- a team with its own quota, during a flood --------------------------------

my %v;
CG::window_clear(60, 20);       # the 30 counted within one minute
for my $i (1 .. 30) {
    my ($status) = hit('team-v');
    $v{$status}++;
    hit("flood2-$_") for ($i * 20 .. $i * 20 + 19);
}
is($v{200}, 20, 'team-v (quota=20/m) admitted 20 of 30 amid 600 new names');
is($v{429}, 10, 'and rejected the rest');

# --- names that keep coming are established: charged, one key each ----------

my @est = map { "est-$_" } 1 .. 20;
for my $round (1 .. 12) {
    hit($_) for @est;
}

my ($sum, @missing) = (0);
ok($t->wait_until(sub {
       @missing = ();
       $sum = 0;
       for my $c (@est) {
           my @k = grep { length }
               $t->redis_cli('--scan', '--pattern', "cg:{$c}:w:*");
           my $v = 0;
           $v += $t->redis_cli('GET', $_) for @k;
           push @missing, "$c: $v" if $v < 12;
           $sum += $v;
       }
       !@missing }), 'a client seen 12 times is charged its 12 requests '
   . '(and what its node holds of a lease)')
    or diag("@missing");

@keys = client_keys();
my @fk = grep { /flood/ } @keys;
is(scalar(@fk), 0, 'still no key for the names seen 3 times');
cmp_ok(scalar(@keys), '<=', scalar(@est) + 1, 'one key per established '
       . 'client (and team-v): ' . scalar(@keys));

$t->stop();
done_testing();
