package FaultProxy;

# Faults injected around a real redis-server, for t/3*.t.  Core Perl only.
# It replaces t/lib/FakeRedis.pm (deleted), whose "serve" mode answered a
# subset of Redis itself: a mock of Redis, which the tests may not have.
# Here every answer comes from a real redis-server; the proxy only delays,
# cuts or withholds its bytes.  Run with CG's fake_server (a process per
# connection):
#
#   use FaultProxy;
#   $t->redis_start();
#   $t->fake_server($t->port(1), FaultProxy::handler(
#       redis => $t->redis_port, fragments => 1, log => "$dir/cmds.log"));
#   # nginx: client_guard_redis 127.0.0.1:%%PORT1%% ...;
#
# With redis => PORT, each connection is relayed to 127.0.0.1:PORT (a
# connection of its own per client connection; either side closing closes
# both), the bytes as they are, with these faults:
#   fragments => 1      Redis's replies are written to the client a few
#                       bytes (1 to 3) at a time, 1 ms apart; what Redis
#                       sent at once beyond 32 bytes (HELLO's reply, a
#                       batch's) in some 16 pieces of random length, so
#                       that a handshake keeps within connect_timeout
#   hang => 'EVALSHA'   from the first command of that name on, the
#                       connection's commands go nowhere: Redis never sees
#                       them, the client never gets an answer (replies to
#                       the commands before it still arrive)
#   log => FILE         appends the name of each command forwarded (upper
#                       case), one a line, for tests that count commands
#
# Without redis, a dead endpoint (no Redis behind, nothing to imitate):
#   mode => 'silent'    accepts, reads, never answers a byte
#   mode => 'close'     accepts, then closes at once
#
# Faults Redis makes itself need no proxy: NOSCRIPT (SCRIPT FLUSH from the
# test), an error from EVALSHA (an ACL without it), quotas (HSET cg:quotas).

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

sub handler {
    my (%opt) = @_;
    my $mode = $opt{mode} || ($opt{redis} ? 'relay' : 'silent');

    die "FaultProxy: mode $mode without redis => PORT\n"
        if $mode eq 'relay' && !$opt{redis};

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
        _relay($c, \%opt);
    };
}

# the first command in $$buf, when it is complete: (its length in bytes,
# its name in upper case); () when more bytes are needed.  A RESP array of
# bulk strings (what hiredis sends) or an inline command line.
sub _command {
    my ($buf) = @_;
    my $size = length $$buf;
    return () unless $size;

    if (substr($$buf, 0, 1) ne '*') {
        my $e = index($$buf, "\n");
        return () if $e < 0;
        my ($name) = substr($$buf, 0, $e) =~ /^\s*(\S*)/;
        return ($e + 1, uc $name);
    }

    my $e = index($$buf, "\r\n");
    return () if $e < 0;
    my $n = substr($$buf, 1, $e - 1);
    # not RESP: passed on as it is, Redis says what is wrong with it
    return ($size, '?') unless $n =~ /^\d+$/;

    my ($pos, $name) = ($e + 2, '');
    for my $i (1 .. $n) {
        return () if $size <= $pos;
        return ($size, '?') if substr($$buf, $pos, 1) ne '$';
        my $h = index($$buf, "\r\n", $pos);
        return () if $h < 0;
        my $len = substr($$buf, $pos + 1, $h - $pos - 1);
        return ($size, '?') unless $len =~ /^\d+$/;
        return () if $size < $h + 2 + $len + 2;
        $name = substr($$buf, $h + 2, $len) if $i == 1;
        $pos = $h + 2 + $len + 2;
    }
    return ($pos, uc $name);
}

sub _write {
    my ($fh, $data, $fragments) = @_;
    my $max = length($data) > 32 ? int(length($data) / 8) : 3;
    while (length $data) {
        my $n = $fragments ? 1 + int(rand($max)) : length $data;
        my $w = syswrite($fh, $data, $n);
        return 0 unless $w;
        substr($data, 0, $w, '');
        sleep 0.001 if $fragments;
    }
    return 1;
}

sub _log {
    my ($file, @names) = @_;
    return unless @names && open(my $fh, '>>', $file);
    print $fh map { "$_\n" } @names;
    close $fh;
}

sub _relay {
    my ($c, $opt) = @_;
    my $r = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$opt->{redis}",
                                  Proto => 'tcp')
        or return;      # Redis is down: so is the proxy's connection
    my $hang = $opt->{hang} ? uc $opt->{hang} : '';
    my $sel = IO::Select->new($c, $r);
    my ($in, $hanging) = ('', 0);

    while (1) {
        for my $fh ($sel->can_read) {
            my $got = sysread($fh, my $chunk, 65536);
            return unless $got;

            if ($fh == $r) {
                _write($c, $chunk, $opt->{fragments}) or return;
                next;
            }

            next if $hanging;       # read and dropped
            $in .= $chunk;

            my ($out, @names) = ('');
            while (my ($len, $name) = _command(\$in)) {
                if ($hang && $name eq $hang) {
                    ($hanging, $in) = (1, '');
                    last;
                }
                push @names, $name;
                $out .= substr($in, 0, $len, '');
            }
            _log($opt->{log}, @names) if $opt->{log};
            _write($r, $out) or return if length $out;
        }
    }
}

1;
