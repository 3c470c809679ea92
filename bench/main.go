// Command bench is Vigil's peer benchmark: it installs rsyslog, syslog-ng and
// Benthos, builds Vigil from this checkout, sends each of them the same generated
// corpus over loopback (syslog over TCP, HTTP NDJSON, a file backlog), checks that
// every line arrived, and prints a table of events/s, MiB/s, CPU seconds per million
// events and peak RSS, with ratios to the best peer and to a bare Go program. See
// bench/README.md.
//
//	go run ./bench            # the full benchmark: 3 interleaved runs, medians
//	go run ./bench -smoke     # 200k lines, 1 run: that the harness works (CI)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-sec/vigil/bench/corpus"
)

// scenario is one way of feeding the peers.
type scenario struct {
	name  string
	title string
	mix   corpus.Mix
	lines int
	input string // tcp, http or file
	bad   int    // lines that are no valid record of the format (Vigil dead-letters them)

	data       *corpus.Corpus
	hashes     []uint64 // sorted hashes of the lines, for checking Vigil's archive
	staging    string   // file input: the corpus as a file, linked into place per run
	cpuProfile string   // when set, Vigil writes a CPU profile there
}

// result is one run of one peer in one scenario.
type result struct {
	scenario, peer string
	run            int
	err            error
	lines          int
	bytes          int64
	secs           float64
	cpu            float64 // seconds of CPU of the peer's process tree
	hwm            int64   // peak RSS, bytes
	polls          int     // progress polls during the run
}

type options struct {
	smoke       bool
	runs        int
	lines       int
	halfBad     int
	fileMiB     int
	seed        uint64
	scenarios   string
	peers       string
	work, cache string
	out         string
	profile     bool
	profileFile string
	keep        bool
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "baseline":
			if err := baselineMain(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "baseline:", err)
				os.Exit(1)
			}
			return
		case "corpus":
			if err := corpusMain(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "corpus:", err)
				os.Exit(1)
			}
			return
		}
	}
	var o options
	flag.BoolVar(&o.smoke, "smoke", false, "smoke mode: 200k lines per scenario, 1 run (CI: proves the harness works; no thresholds)")
	flag.IntVar(&o.runs, "runs", 3, "interleaved runs per scenario and peer; the table shows medians")
	flag.IntVar(&o.lines, "lines", 1_000_000, "lines of the syslog TCP and HTTP scenarios")
	flag.IntVar(&o.halfBad, "half-bad-lines", 500_000, "lines of the half-bad syslog scenario")
	flag.IntVar(&o.fileMiB, "file-mib", 512, "size of the file backlog in MiB")
	flag.Uint64Var(&o.seed, "seed", 1, "corpus seed")
	flag.StringVar(&o.scenarios, "scenarios", "syslog_tcp,http_ndjson,syslog_half_bad,file_backlog", "scenarios to run, comma-separated")
	flag.StringVar(&o.peers, "peers", "rsyslog,syslog-ng,benthos,vigil,go-baseline", "programs to run, comma-separated")
	flag.StringVar(&o.work, "work", "", "working directory (default: a new temporary directory, removed at the end)")
	flag.StringVar(&o.cache, "cache", "", "where peers are installed (default: <repo>/.cache/bench)")
	flag.StringVar(&o.out, "out", "", "also write the table (markdown) to this file")
	flag.BoolVar(&o.profile, "profile", false, "after the table, run Vigil once more on the syslog TCP scenario with --cpuprofile and print `go tool pprof -top`")
	flag.StringVar(&o.profileFile, "profile-file", "", "where -profile keeps the CPU profile (default: in the working directory, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep each run's directory (outputs, logs, configs)")
	flag.Parse()
	if o.smoke {
		o.runs, o.lines, o.halfBad = 1, 200_000, 200_000
	}
	if err := mainErr(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func mainErr(o options) error {
	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if o.cache == "" {
		o.cache = filepath.Join(root, ".cache", "bench")
	}
	if o.cache, err = filepath.Abs(o.cache); err != nil {
		return err
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "vigil-bench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(o.work)
		}
	}
	if o.work, err = filepath.Abs(o.work); err != nil {
		return err
	}
	scs, err := scenarios(o)
	if err != nil {
		return err
	}
	var ps []*peer
	want := map[string]bool{}
	for _, name := range strings.Split(o.peers, ",") {
		i := slices.IndexFunc(peers(), func(p *peer) bool { return p.name == name })
		if i < 0 {
			return fmt.Errorf("-peers: unknown program %q", name)
		}
		ps = append(ps, peers()[i])
		want[name] = true
	}
	t, err := install(root, o.cache, want, logf)
	if err != nil {
		return err
	}
	loadBefore := loadAvg()
	var results []result
	failed := 0
	for _, sc := range scs {
		if err := prepare(sc, o, want["vigil"]); err != nil {
			return err
		}
		var take []*peer
		for _, p := range ps {
			if p.takes(sc.input) {
				take = append(take, p)
			}
		}
		for r := range o.runs {
			// Interleave: each run starts with a different peer.
			for i := range take {
				p := take[(i+r)%len(take)]
				res := runOneRetrying(t, sc, p, r, o)
				if res.err != nil {
					failed++
					logf("%s %s run %d: FAILED: %v", sc.name, p.name, r+1, res.err)
				} else {
					logf("%s %s run %d: %d lines in %.2fs: %.0f events/s, CPU %.2fs, peak RSS %.0f MiB, %d progress polls",
						sc.name, p.name, r+1, res.lines, res.secs, float64(res.lines)/res.secs, res.cpu, float64(res.hwm)/(1<<20), res.polls)
				}
				results = append(results, res)
			}
		}
		sc.data, sc.hashes = nil, nil
		if sc.staging != "" {
			os.Remove(sc.staging)
		}
	}
	var b strings.Builder
	header(&b, o, t, loadBefore, time.Since(start))
	table(&b, scs, ps, results)
	fmt.Print(b.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if o.profile {
		if err := profileVigil(t, o); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d runs failed (see above)", failed)
	}
	return nil
}

func scenarios(o options) ([]*scenario, error) {
	fileLines := o.fileMiB << 20 / ((corpus.MinLen+corpus.MaxLen)/2 + 1)
	if o.smoke {
		fileLines = 200_000
	}
	all := []*scenario{
		{name: "syslog_tcp", title: "syslog over TCP (1 connection, newline framing) → JSON file", mix: corpus.Syslog, lines: o.lines, input: "tcp"},
		{name: "http_ndjson", title: "HTTP NDJSON (bodies of 1,000 lines, 2 clients) → file", mix: corpus.NDJSON, lines: o.lines, input: "http"},
		{name: "syslog_half_bad", title: "syslog over TCP, every other line no syslog → JSON file", mix: corpus.SyslogHalfBad, lines: o.halfBad, input: "tcp", bad: o.halfBad / 2},
		{name: "file_backlog", title: "file backlog (Apache combined, written before the run) → JSON file", mix: corpus.ApacheLog, lines: fileLines, input: "file"},
	}
	var out []*scenario
	for _, name := range strings.Split(o.scenarios, ",") {
		i := slices.IndexFunc(all, func(s *scenario) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// prepare generates the scenario's corpus (and writes it as a file for the file
// input), outside any measurement.
func prepare(sc *scenario, o options, hashes bool) error {
	logf("%s: generating %d lines (%s, seed %d)", sc.name, sc.lines, sc.mix, o.seed)
	c, err := corpus.Generate(sc.mix, o.seed, sc.lines)
	if err != nil {
		return err
	}
	sc.data = c
	if hashes {
		sc.hashes = corpusHashes(c)
	}
	if sc.input == "file" {
		sc.staging = filepath.Join(o.work, sc.name+".log")
		if err := os.WriteFile(sc.staging, c.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runOneRetrying is runOne, run again (once) when the peer could not bind a port it
// was given: another program took it between the check and the peer's bind. Nothing
// was sent in such a run, so it measured nothing.
func runOneRetrying(t *tools, sc *scenario, p *peer, r int, o options) result {
	res := runOne(t, sc, p, r, o)
	if res.err != nil && strings.Contains(res.err.Error(), "address already in use") {
		logf("%s %s run %d: a port was taken before the peer bound it; running again on others: %v", sc.name, p.name, r+1, res.err)
		res = runOne(t, sc, p, r, o)
	}
	return res
}

// runOne runs one peer on one scenario: start, wait until ready, send (or put the
// file in place), wait until every line has arrived, measure, verify, stop.
func runOne(t *tools, sc *scenario, p *peer, r int, o options) (res result) {
	res = result{scenario: sc.name, peer: p.name, run: r, lines: sc.lines, bytes: int64(len(sc.data.Data))}
	fail := func(err error) result { res.err = err; return res }
	dir := filepath.Join(o.work, fmt.Sprintf("%s-%s-%d", sc.name, p.name, r+1))
	os.RemoveAll(dir) // a run retried, or one kept from an earlier invocation
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		return fail(err)
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	port, err := t.ports.Take()
	if err != nil {
		return fail(err)
	}
	adminPort, err := t.ports.Take()
	if err != nil {
		return fail(err)
	}
	e := &runEnv{Dir: dir, Port: port, AdminPort: adminPort, Out: filepath.Join(dir, "out.json"),
		InGlob: filepath.Join(dir, "in", "*.log"), InFile: filepath.Join(dir, "in", "access.log")}
	// The run's time limit: generous for the slowest peer on a shared machine (1,000
	// lines/s), bounded for a stuck one; a run that makes no progress for 60 s ends
	// sooner.
	limit := 60*time.Second + time.Duration(sc.lines/1000)*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()

	var t0 time.Time
	if sc.input == "file" && p.fileFirst {
		t0 = time.Now()
		if err := os.Link(sc.staging, e.InFile); err != nil {
			return fail(err)
		}
	}
	in, err := p.start(t, sc, e)
	if err != nil {
		return fail(err)
	}
	grace := 10 * time.Second
	if sc.cpuProfile != "" {
		grace = 45 * time.Second // Vigil writes the profile when it has shut down
	}
	defer in.p.stop(grace)
	readyBy := time.Now().Add(60 * time.Second)
	for {
		if err = in.ready(); err == nil {
			break
		}
		if gone, werr := in.p.exited(); gone {
			return fail(fmt.Errorf("%s exited before it was ready (%v): %s", p.name, werr, in.p.tail()))
		}
		if time.Now().After(readyBy) {
			return fail(fmt.Errorf("%s not ready after 60s: %v: %s", p.name, err, in.p.tail()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var before treeStats
	if t0.IsZero() {
		if before, err = statTree(in.p.pid()); err != nil {
			return fail(err)
		}
		t0 = time.Now()
	}
	sendErr := make(chan error, 1)
	var conn net.Conn
	connCh := make(chan net.Conn, 1)
	switch sc.input {
	case "tcp":
		go func() {
			c, err := sendTCP(ctx, in.target, sc.data.Data)
			connCh <- c
			sendErr <- err
		}()
	case "http":
		go func() { sendErr <- sendHTTP(ctx, in.target, sc.data, 1000, 2) }()
	case "file":
		if !p.fileFirst {
			if err := os.Link(sc.staging, e.InFile); err != nil {
				return fail(err)
			}
		}
		sendErr <- nil
	}
	defer func() {
		select {
		case c := <-connCh:
			conn = c
		default:
		}
		if conn != nil {
			conn.Close()
		}
	}()

	var last int64
	lastMove := time.Now()
	// Progress is polled every 50 ms near the end — once every line is sent (no
	// program can be done before) and the rate so far says less than 2 s are left —
	// and every 500 ms until then: asking Vigil costs Vigil a /metrics scrape (stream
	// and consumer info from JetStream included), which at 20 a second took 4–5% of
	// its CPU in a syslog run, a cost of the measurement, not of the work (the peers'
	// output files are counted by this program).
	sent := false
	var after treeStats
	// peak is the largest VmHWM sum seen while the run goes on, sampled every
	// second: a peer that exits by itself takes its /proc entries with it.
	var peak int64
	var lastPeak time.Time
	for {
		if time.Since(lastPeak) >= time.Second {
			lastPeak = time.Now()
			if s, err := statTree(in.p.pid()); err == nil {
				peak = max(peak, s.hwm)
			}
		}
		n, err := in.progress()
		res.polls++
		if err != nil {
			return fail(fmt.Errorf("progress: %w", err))
		}
		if n >= int64(sc.lines) {
			res.secs = time.Since(t0).Seconds()
			if n > int64(sc.lines) {
				return fail(fmt.Errorf("%d lines arrived, %d were sent", n, sc.lines))
			}
			break
		}
		if n != last {
			last, lastMove = n, time.Now()
		} else if time.Since(lastMove) > 60*time.Second {
			return fail(fmt.Errorf("stalled at %d of %d lines for 60s: %s", n, sc.lines, in.p.tail()))
		}
		select {
		case err := <-sendErr:
			if err != nil {
				return fail(fmt.Errorf("send: %w", err))
			}
			sent = true
		default:
		}
		if gone, werr := in.p.exited(); gone {
			// A peer that ends by itself (Benthos after its file) has written
			// everything by then: look once more.
			if n, _ := in.progress(); n == int64(sc.lines) {
				res.secs = time.Since(t0).Seconds()
				break
			}
			return fail(fmt.Errorf("%s exited at %d of %d lines (%v): %s", p.name, n, sc.lines, werr, in.p.tail()))
		}
		wait := 500 * time.Millisecond
		if sent && nearEnd(n, int64(sc.lines), time.Since(t0)) {
			wait = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("%d of %d lines after %s", n, sc.lines, limit))
		case err := <-sendErr:
			// Sending ended: poll at the fine interval from now on.
			if err != nil {
				return fail(fmt.Errorf("send: %w", err))
			}
			sent = true
		case <-time.After(wait):
		}
	}
	if gone, _ := in.p.exited(); gone {
		u := in.p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
		after.cpu = time.Duration(u.Utime.Nano() + u.Stime.Nano())
		after.hwm = u.Maxrss << 10 // kB
	} else if after, err = statTree(in.p.pid()); err != nil {
		return fail(err)
	}
	res.cpu = (after.cpu - before.cpu).Seconds()
	res.hwm = max(after.hwm, peak)
	if err := in.verify(); err != nil {
		return fail(fmt.Errorf("verify: %w", err))
	}
	return res
}

// median of the values of the successful runs.
func median(rs []result, f func(result) float64) float64 {
	var v []float64
	for _, r := range rs {
		if r.err == nil {
			v = append(v, f(r))
		}
	}
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func header(w io.Writer, o options, t *tools, loadBefore string, took time.Duration) {
	mode := fmt.Sprintf("%d interleaved runs, medians", o.runs)
	switch {
	case o.smoke:
		mode = "smoke: 1 run"
	case o.runs == 1:
		mode = "1 run"
	}
	fmt.Fprintf(w, "\n%s, %s, %d cores, %s (%s), load average %s before and %s after, %s in all\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), runtime.Version(), mode,
		loadBefore, loadAvg(), took.Round(time.Second))
	var vs []string
	for _, k := range []string{"vigil", "rsyslog", "syslog-ng", "benthos"} {
		if v := t.versions[k]; v != "" {
			vs = append(vs, k+" "+v)
		}
	}
	fmt.Fprintf(w, "Programs: %s.\n", strings.Join(vs, ", "))
}

func table(w io.Writer, scs []*scenario, ps []*peer, results []result) {
	for _, sc := range scs {
		byPeer := map[string][]result{}
		for _, r := range results {
			if r.scenario == sc.name {
				byPeer[r.peer] = append(byPeer[r.peer], r)
			}
		}
		type row struct {
			name                  string
			eps, mibs, cpu1m, rss float64
			ok, runs              int
			errs                  []string
		}
		var rows []row
		best, bestEPS, bestCPU, baseEPS := "", 0.0, 0.0, 0.0
		for _, p := range ps {
			rs := byPeer[p.name]
			if len(rs) == 0 {
				continue
			}
			rw := row{name: p.name, runs: len(rs)}
			rw.eps = median(rs, func(r result) float64 { return float64(r.lines) / r.secs })
			rw.mibs = median(rs, func(r result) float64 { return float64(r.bytes) / r.secs / (1 << 20) })
			rw.cpu1m = median(rs, func(r result) float64 { return r.cpu / float64(r.lines) * 1e6 })
			rw.rss = median(rs, func(r result) float64 { return float64(r.hwm) / (1 << 20) })
			for _, r := range rs {
				if r.err == nil {
					rw.ok++
				} else {
					rw.errs = append(rw.errs, r.err.Error())
				}
			}
			rows = append(rows, rw)
			switch {
			case rw.ok == 0:
			case p.name == "go-baseline":
				baseEPS = rw.eps
			case p.name != "vigil" && rw.eps > bestEPS:
				best, bestEPS, bestCPU = p.name, rw.eps, rw.cpu1m
			}
		}
		perLine := 0.0
		for _, r := range results {
			if r.scenario == sc.name {
				perLine = float64(r.bytes) / float64(r.lines)
			}
		}
		fmt.Fprintf(w, "\n### %s: %s\n\n%s lines, %.0f bytes per line on average.", sc.name, sc.title,
			thousands(float64(sc.lines)), perLine)
		if best != "" {
			fmt.Fprintf(w, " Best peer: %s.", best)
		}
		fmt.Fprintf(w, "\n\n| program | events/s | MiB/s | CPU s per 1M events | peak RSS MiB | events/s × best peer | CPU × best peer | events/s × Go baseline | runs ok |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		ratio := func(a, b float64) string {
			if a == 0 || b == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f×", a/b)
		}
		for _, rw := range rows {
			if rw.ok == 0 {
				fmt.Fprintf(w, "| %s | failed | | | | | | | 0/%d |\n", rw.name, rw.runs)
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.1f | %.2f | %.0f | %s | %s | %s | %d/%d |\n", rw.name, thousands(rw.eps), rw.mibs,
				rw.cpu1m, rw.rss, ratio(rw.eps, bestEPS), ratio(rw.cpu1m, bestCPU), ratio(rw.eps, baseEPS), rw.ok, rw.runs)
		}
		for _, rw := range rows {
			for _, e := range rw.errs {
				fmt.Fprintf(w, "\n- %s failed: %.300s", rw.name, e)
			}
		}
		fmt.Fprintln(w)
	}
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// profileVigil runs Vigil once more on the syslog TCP scenario with --cpuprofile and
// prints the top of the profile.
func profileVigil(t *tools, o options) error {
	scs, _ := scenarios(options{lines: o.lines, halfBad: o.halfBad, fileMiB: o.fileMiB, scenarios: "syslog_tcp"})
	sc := scs[0]
	sc.cpuProfile = o.profileFile
	if sc.cpuProfile == "" {
		sc.cpuProfile = filepath.Join(o.work, "vigil-syslog.cpu.pprof")
	}
	if !filepath.IsAbs(sc.cpuProfile) {
		abs, err := filepath.Abs(sc.cpuProfile)
		if err != nil {
			return err
		}
		sc.cpuProfile = abs
	}
	if err := prepare(sc, o, true); err != nil {
		return err
	}
	p := peers()[slices.IndexFunc(peers(), func(p *peer) bool { return p.name == "vigil" })]
	res := runOneRetrying(t, sc, p, 0, o) // stops Vigil with SIGTERM: the profile is written on exit
	if res.err != nil {
		return res.err
	}
	fmt.Printf("\nCPU profile of Vigil on %s (%d lines, %.0f events/s in this run; %s):\n", sc.name, sc.lines, float64(sc.lines)/res.secs, sc.cpuProfile)
	for _, args := range [][]string{{"-top", "-nodecount=40"}, {"-top", "-cum", "-nodecount=60"}} {
		out, err := exec.Command("go", append(append([]string{"tool", "pprof"}, args...), t.vigil, sc.cpuProfile)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof: %w: %s", err, out)
		}
		fmt.Printf("\n$ go tool pprof %s\n%s", strings.Join(args, " "), out)
	}
	if _, err := os.Stat(sc.cpuProfile); err != nil {
		return errors.New("no profile written")
	}
	return nil
}

// nearEnd reports whether, at the average rate so far, the last of total lines
// should arrive within 2 s (or nothing has arrived yet to tell the rate by).
func nearEnd(n, total int64, elapsed time.Duration) bool {
	if n <= 0 || elapsed <= 0 {
		return true
	}
	left := time.Duration(float64(total-n) / float64(n) * float64(elapsed))
	return left < 2*time.Second
}
