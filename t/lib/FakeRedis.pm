package FakeRedis;

# Fake Redis servers that misbehave, for t/3*.t.  Core Perl only.  Use with
# CG's fake_server, which runs the handler in a process per connection:
#
#   use FakeRedis;
#   $t->fake_server($port, FakeRedis::handler(mode => 'silent'));
#
# Modes:
#   silent   accepts, reads, never answers a byte
#   close    accepts, then closes at once
#   serve    answers a small subset of Redis (PING AUTH SELECT GET HGETALL
#            ZADD ZREMRANGEBYSCORE ZCARD SUBSCRIBE EVAL EVALSHA), options:
#     fragments => 1       every reply is written a few bytes at a time
#     noscript  => 1       EVALSHA always answers -NOSCRIPT (EVAL works)
#     evalerr   => 1       EVAL and EVALSHA answer an error
#     hang      => 'EVALSHA'  from the first such command on, never answers
#     grant     => N       units an EVAL/EVALSHA lease grants each client of
#                          the batch (default 1000)
#     log       => FILE    appends each command name, one per line
#     quotas    => { client => "rate=..." }   what HGETALL cg:quotas returns

use strict;
use warnings;

use Time::HiRes qw(sleep);

sub handler {
    my (%opt) = @_;
    my $mode = $opt{mode} || 'serve';

    return sub {
        my ($c) = @_;
        if ($mode eq 'close') {
            close $c;
            return;
        }
        if ($mode eq 'silent') {
            my $buf;
            1 while sysread($c, $buf, 4096);
            return;
        }
        _serve($c, \%opt);
    };
}

sub _read_command {
    my ($c, $bufref) = @_;
    while (1) {
        if ($$bufref =~ /^\*(\d+)\r\n/) {
            my $n = $1;
            my $pos = length("*$n\r\n");
            my @args;
            my $ok = 1;
            for (1 .. $n) {
                my $rest = substr($$bufref, $pos);
                if ($rest =~ /^\$(\d+)\r\n/) {
                    my $len = $1;
                    my $hl = length("\$$len\r\n");
                    if (length($rest) < $hl + $len + 2) { $ok = 0; last }
                    push @args, substr($rest, $hl, $len);
                    $pos += $hl + $len + 2;
                } else {
                    $ok = 0;
                    last;
                }
            }
            if ($ok) {
                substr($$bufref, 0, $pos) = '';
                return \@args;
            }
        }
        my $got = sysread($c, my $chunk, 65536);
        return undef unless $got;
        $$bufref .= $chunk;
    }
}

sub _bulk { defined $_[0] ? '$' . length($_[0]) . "\r\n$_[0]\r\n" : "\$-1\r\n" }

sub _reply {
    my ($c, $opt, $text) = @_;
    if ($opt->{fragments}) {
        while (length $text) {
            my $n = 1 + int(rand(3));
            syswrite($c, substr($text, 0, $n, '')) or return;
            sleep 0.001;
        }
        return;
    }
    syswrite($c, $text);
}

sub _serve {
    my ($c, $opt) = @_;
    my $buf = '';
    my $hanging = 0;
    my $grant = defined $opt->{grant} ? $opt->{grant} : 1000;

    while (my $cmd = _read_command($c, \$buf)) {
        my $name = uc $cmd->[0];

        if ($opt->{log} && open(my $fh, '>>', $opt->{log})) {
            print $fh "$name\n";
            close $fh;
        }

        $hanging = 1 if $opt->{hang} && $name eq uc $opt->{hang};
        next if $hanging;

        my $r;
        if ($name eq 'PING') {
            $r = "+PONG\r\n";
        } elsif ($name eq 'AUTH' || $name eq 'SELECT') {
            $r = "+OK\r\n";
        } elsif ($name eq 'GET') {
            $r = _bulk(undef);
        } elsif ($name eq 'HGETALL') {
            my %h = $cmd->[1] =~ /quotas$/ ? %{$opt->{quotas} || {}} : ();
            $r = '*' . (2 * keys %h) . "\r\n"
                . join('', map { _bulk($_) . _bulk($h{$_}) } sort keys %h);
        } elsif ($name eq 'ZADD' || $name eq 'ZREMRANGEBYSCORE'
                 || $name eq 'ZCARD')
        {
            $r = ":1\r\n";
        } elsif ($name eq 'SUBSCRIBE') {
            $r = "*3\r\n" . _bulk('subscribe') . _bulk($cmd->[1]) . ":1\r\n";
        } elsif ($name =~ /^EVAL/ && $opt->{evalerr}) {
            $r = "-ERR Error running script (fake)\r\n";
        } elsif ($name eq 'EVALSHA' && $opt->{noscript}) {
            $r = "-NOSCRIPT No matching script. Please use EVAL.\r\n";
        } elsif ($name eq 'EVAL' || $name eq 'EVALSHA') {
            # a batch: ARGV[1] clients, then per client its number of
            # keys, want, owed, horizon and 5 arguments per key; per
            # client { granted, retry ms, binding limit, left after the
            # grant, what each of 4 limits has left, and when the first
            # and the last unit may be spent (0, 0: now) }
            my @argv = @$cmd[3 + $cmd->[2] .. $#$cmd];
            my $n = shift @argv;
            $r = '*' . (10 * $n) . "\r\n";
            for (1 .. $n) {
                my ($nk, $want) = splice(@argv, 0, 4);
                splice(@argv, 0, 5 * $nk);
                my $g = $want < $grant ? $want : $grant;
                my $left = $g ? 1000000 : 0;
                $r .= ":$g\r\n:" . ($g ? 0 : 1000) . "\r\n:1\r\n"
                    . ":$left\r\n" . (":$left\r\n" x 4) . ":0\r\n:0\r\n";
            }
        } else {
            $r = "-ERR unknown command '$name'\r\n";
        }
        _reply($c, $opt, $r);
    }
}

1;
