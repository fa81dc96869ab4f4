#!/usr/bin/perl
# nginx -s reload keeps every client's counters; a changed zone size is
# refused with a message, and the old configuration keeps running.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();

sub conf {
    my ($size) = @_;
    return CG::http(zone => "cg:$size",
                    quotas => ['default rate=1r/m burst=4']);
}

$t->write_conf(conf('1m'), workers => 2);
$t->start();

sub req { $t->get('/', { 'X-Client-Id' => $_[0] })->{status} }

is(join(' ', map { req('team-a') } 1 .. 3), '200 200 200', 'three used');

ok($t->reload(), 'reloaded');
is(join(' ', map { req('team-a') } 1 .. 3), '200 200 429',
   'counters survive a reload');

# the same zone with another size would lose every counter: refused

$t->write_conf(conf('2m'), workers => 2);
ok(!$t->reload(), 'reload with a changed zone size is refused');
like($t->error_log,
     qr/client_guard_zone "cg" size changed from 1048576 to 2097152: a reload would drop every client's counters/,
     'message names the zone and sizes');
is(req('team-a'), 429, 'old configuration still serves, counters kept');

# back to the same size: a reload works again

$t->write_conf(conf('1m'), workers => 2);
ok($t->reload(), 'reload with the old size');
is(req('team-a'), 429, 'still counted');
is(req('team-b'), 200, 'new client');

$t->stop();
done_testing();
