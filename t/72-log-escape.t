#!/usr/bin/perl
# No value from a request or from Redis forges a line of error.log (issue
# 13): a newline in a Redis quota field or value, control and non-ASCII
# bytes in a client header, a newline in a deploy note or an incident
# title all reach the log escaped (or cleaned), on the line they belong to.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use CG;

my $t = CG->new();
$t->redis_start();

my $forged = "\n2026/01/01 00:00:00 [emerg] 1#1: forged by";

$t->redis_cli('HSET', 'cg:quotas', "evil$forged field", 'quota=1/h');
$t->redis_cli('HSET', 'cg:quotas', 'team-v', "quota=x$forged value");
$t->redis_cli('HSET', 'cg:apikeys', "k$forged apikey", 'team-k');

$t->write_conf(CG::http(
    quotas => ['default quota=1000/h'],
    redis => 'timeout=2s',
    status => 'deploy_token=secret-token-123',
    locations => 'location /anon/ {
                      client_guard_fallback off;
                      empty_gif;
                  }'),
    workers => 1);
$t->start();
$t->wait_for_link();

ok(CG::wait_until(sub {
    $t->error_log =~ /field "k\\x0a2026/ }, 5), 'bad Redis data logged');

# a header nginx takes: control and non-ASCII bytes, a quote, a backslash

my $s = $t->connect();
print $s "GET /anon/ HTTP/1.0\r\nHost: x\r\n"
    . "X-Client-Id: a\x01b\xc3\xa9\"\\\x7f\r\n\r\n";
my $answer = join '', <$s>;
like($answer, qr{^HTTP/1.1 403}, 'an invalid name, no fallback: 403');

# deploy notes and incidents: what nginx decodes from %0a

my $auth = { Authorization => 'Bearer secret-token-123' };
is($t->request('POST', '/status?deploy=team-a&note=v1%0a2026/01/01+00:00:00'
               . '+[emerg]+1%231:+forged+by+note', $auth)->{status}, 201,
   'deploy marker');
is($t->request('POST', '/status?incident=new&title=t%0d%0a[alert]+forged+by'
               . '+title', $auth)->{status}, 201, 'incident');

sleep 0.5;
my $log = $t->error_log;

like($log, qr/field "evil\\x0a2026\/01\/01 00:00:00 \[emerg\] 1#1: forged by field"/,
     'a Redis field: its newline escaped');
like($log, qr/field "team-v" value "quota=x\\x0a2026[^"]* value"/,
     'a Redis value: its newline escaped');
like($log, qr/invalid name: "a\\x01b\\xc3\\xa9\\x22\\x5c\\x7f"/,
     'a header: control, non-ASCII, quote and backslash escaped');

my @forged = grep { /forged by/ } split /\n/, $log;
is(scalar @forged, 5, 'each forged text stays on its line');
is(scalar(grep { !/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(error|notice)\] \d+#\d+: / }
          @forged), 0, 'no line begins where a value says it does');
unlike($log, qr/^\S+ \S+ \[(emerg|alert)\]/m, 'no [emerg] or [alert] line');

# the harness's own check would take the escaped texts for alerts: the
# test above is the stricter one
$t->allow_alerts();
$t->stop();
done_testing();
