# gnuplot -e "datafile='build/bench/plot.dat'; outfile='x.png'" bench/plot.gp
# Throughput at saturation (bars, left axis) and latency at a fixed load of
# about 7,000-9,000 r/s (points, right axis, log scale) by configuration.
if (!exists("datafile")) datafile = 'build/bench/plot.dat'
if (!exists("outfile")) outfile = 'docs/bench-throughput.png'

set terminal pngcairo size 1400,720 font ",10" noenhanced
set output outfile
set title "client guard vs peers (wrk, loopback, 1 nginx worker): throughput at saturation, latency at a fixed load"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -35 scale 0
set ylabel "requests per second (bars)"
set y2label "latency at ~8k r/s, µs (points, log scale)"
set ytics nomirror
set y2tics
set logscale y2
set yrange [0:*]
set y2range [50:*]
set key top right
set grid ytics
set bmargin 9
plot datafile using 2:xtic(1) title "req/s, 10 hot clients" lc rgb "#4472c4", \
     ''       using 3 title "req/s, 10 hot + 10,000 cold" lc rgb "#a5c8f0", \
     ''       using ($0):4 axes x1y2 with points pt 9 ps 1.4 lc rgb "#2e8b57" title "p50, fixed load", \
     ''       using ($0):5 axes x1y2 with points pt 7 ps 1.4 lc rgb "#c00000" title "p99, fixed load"
