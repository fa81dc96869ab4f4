#!/usr/bin/perl
# Incidents on the status page: ops open one by an authenticated POST
# (title, state, description, expected recovery), update it as it goes
# (investigating, identified, monitoring, resolved); the JSON lists them
# with their latest state.  Through Redis (the stream {prefix}incidents,
# also open to XADD), an incident opened or updated on one node shows on
# the others.  Bad input is refused and stores nothing.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use CG;

my %auth = (Authorization => 'Bearer incident-token');

sub post {
    my ($t, $q, $h) = @_;
    my $r = $t->request('POST', "/status?$q", $h // \%auth);
    my $j = eval { decode_json($r->{content}) };
    return ($r->{status}, $j);
}

sub incidents {
    my ($t) = @_;
    my $j = decode_json($t->get('/status')->{content});
    return ($j->{incidents}, $j->{incidents_open});
}

# --- one node ---------------------------------------------------------------

my $t = CG->new();
$t->write_conf(CG::http(status => 'deploy_token=incident-token'));
$t->start();

my ($list, $open) = incidents($t);
is_deeply($list, [], 'no incident yet');
is($open, 0, 'none open');

my ($st, $j) = post($t, 'incident=new&title=Checkout+errors'
                        . '&text=5xx+from+team-pay%27s+calls&eta=30m');
is($st, 201, 'an incident opened');
my $id = $j->{incident}{id};
ok($id =~ /^\d+$/, 'it has an id');
is($j->{incident}{state}, 'investigating', 'investigating at first');
my $eta = $j->{incident}{eta_ms} - $j->{incident}{time_ms};
ok($eta > 29 * 60 * 1000 && $eta <= 30 * 60 * 1000 + 100,
   'expected recovery in 30 minutes');

($list, $open) = incidents($t);
is(scalar @$list, 1, 'listed');
is($open, 1, 'one open');
is($list->[0]{title}, 'Checkout errors', 'title');
is($list->[0]{description}, '5xx from team-pay_s calls',
   'description, cleaned of what needs escaping');
is($list->[0]{source}, 'local', 'posted here');

($st, $j) = post($t, "incident=$id&state=identified&text=bad+deploy");
is($st, 200, 'updated');
($st, $j) = post($t, "incident=$id&state=monitoring&eta=0");
is($j->{incident}{eta_ms}, 0, 'expected recovery cleared');

($list) = incidents($t);
is($list->[0]{state}, 'monitoring', 'the latest state');
is($list->[0]{description}, 'bad deploy', 'the latest description');
is($list->[0]{title}, 'Checkout errors', 'the title kept');

($st, $j) = post($t, 'incident=new&title=Second');
my $id2 = $j->{incident}{id};
isnt($id2, $id, 'a second incident');
post($t, "incident=$id&state=resolved");

($list, $open) = incidents($t);
is(scalar @$list, 2, 'both listed, oldest first');
is($list->[0]{id}, $id, 'oldest first');
is($open, 1, 'one still open');

# refused, nothing stored
is((post($t, 'incident=new&title=x', {}))[0], 403, 'no token: 403');
is((post($t, 'incident=new&title=x',
         { Authorization => 'Bearer wrong-token' }))[0], 403,
   'wrong token: 403');
# a 400 names the argument refused: {"error":"bad event argument",
# "argument":"..."}
for my $c (['incident=new', 'title', 'no title'],
           ["incident=$id&state=panicking", 'state', 'bad state'],
           ["incident=$id&eta=soon", 'eta', 'bad eta'],
           ['incident=abc', 'incident', 'bad id'],
           ['deploy=a%2Fb', 'deploy', 'bad team name'],
           ['nothing=1', 'incident', 'neither deploy nor incident']) {
    my ($st, $j) = post($t, $c->[0]);
    is($st, 400, "$c->[2]: 400");
    is_deeply($j, { error => 'bad event argument', argument => $c->[1] },
              "$c->[2]: the answer names \"$c->[1]\"");
}
is((post($t, 'incident=12345'))[0], 404, 'unknown incident: 404');
($list) = incidents($t);
is(scalar @$list, 2, 'nothing stored by the refused posts');

# at most 16 kept: the resolved go first
post($t, "incident=new&title=many-$_") for 1 .. 15;
($list) = incidents($t);
is(scalar @$list, 16, 'at most 16');
ok(!(grep { $_->{id} eq $id } @$list), 'the resolved one went first');
ok((grep { $_->{id} eq $id2 } @$list), 'the open one stayed');

$t->stop();

# --- through Redis: two nodes ------------------------------------------------

SKIP: {
    skip 'redis-server not installed', 8
        unless `command -v redis-server 2>/dev/null`;

    my $t1 = CG->new();
    my $rport = $t1->redis_start();
    my $t2 = CG->new(redis_port => $rport);

    my $conf = CG::http(redis => 1, status => 'deploy_token=incident-token',
                        http => 'client_guard_status_publish interval=300ms;');
    $t1->write_conf($conf);
    $t2->write_conf($conf);
    $t1->start();
    $t2->start();
    $t1->wait_for_link();

    ($st, $j) = post($t1, 'incident=new&title=Redis+slow&eta=10m');
    is($st, 201, 'opened on node 1');
    my $rid = $j->{incident}{id};

    my $seen;
    ok(CG::wait_until(sub {
        ($seen) = grep { $_->{id} eq $rid } @{ (incidents($t2))[0] };
        return $seen;
    }, 10), 'shows on node 2') or diag(explain [incidents($t2)]);
    is($seen->{source}, 'redis', 'read from Redis');
    is($seen->{title}, 'Redis slow', 'with its title');

    # updated on node 2, seen on node 1
    ($st) = post($t2, "incident=$rid&state=identified&text=failover");
    is($st, 200, 'node 2 updates an incident opened on node 1');
    ok(CG::wait_until(sub {
        my ($i) = grep { $_->{id} eq $rid } @{ (incidents($t1))[0] };
        return $i && $i->{state} eq 'identified'
               && $i->{description} eq 'failover';
    }, 10), 'node 1 sees the update');

    # an XADD by hand, as docs/status.md shows
    $t1->redis_cli('XADD', 'cg:incidents', '*', 'id', '1700000000000',
                   'state', 'monitoring', 'title', 'added by hand',
                   'eta', '0');
    ok(CG::wait_until(sub {
        grep { $_->{title} eq 'added by hand' } @{ (incidents($t2))[0] };
    }, 10), 'an event added with XADD shows');

    my $c = decode_json($t1->get('/status?scope=cluster')->{content});
    ok((grep { $_->{id} eq $rid } @{ $c->{incidents} || [] }),
       'and in the cluster view');

    $t1->stop();
    $t2->stop();
}

done_testing();
