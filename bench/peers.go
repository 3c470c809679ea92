package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/bench/corpus"
)

//go:embed peers/*
var peerConfigs embed.FS

// runEnv is what one run of one peer in one scenario is given.
type runEnv struct {
	Dir       string // the run's directory; removed afterwards
	Port      int    // where the scenario's input is sent (tcp, http)
	AdminPort int    // Vigil's admin listener
	Out       string // the output file of a peer that writes one
	InGlob    string // file scenario: the glob the peer follows
	InFile    string // file scenario: the file that appears
}

// instance is a started peer.
type instance struct {
	p      *proc
	target string // tcp host:port or http URL
	// fileFirst: the input file must exist before the peer starts (Benthos's file
	// input reads the files it finds at start and then ends).
	ready    func() error          // nil once the peer takes input
	progress func() (int64, error) // lines (events, plus dead letters for Vigil) arrived so far
	verify   func() error          // after progress reached the lines sent
}

// peer is one program under test.
type peer struct {
	name      string
	inputs    []string // scenario inputs it takes: tcp, http, file
	fileFirst bool
	start     func(t *tools, sc *scenario, e *runEnv) (*instance, error)
}

func (p *peer) takes(input string) bool { return slices.Contains(p.inputs, input) }

// peers is every program, in the order the table lists them.
func peers() []*peer {
	return []*peer{
		{name: "rsyslog", inputs: []string{"tcp", "file"}, start: startRsyslog},
		{name: "syslog-ng", inputs: []string{"tcp"}, start: startSyslogNG},
		{name: "benthos", inputs: []string{"tcp", "http", "file"}, fileFirst: true, start: startBenthos},
		{name: "vigil", inputs: []string{"tcp", "http", "file"}, start: startVigil},
		{name: "go-baseline", inputs: []string{"tcp", "http", "file"}, start: startBaseline},
	}
}

// render writes the peer config name, filled from e, into the run directory.
func render(name string, e *runEnv) (string, error) {
	b, err := peerConfigs.ReadFile("peers/" + name)
	if err != nil {
		return "", err
	}
	tpl, err := template.New(name).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.Dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return path, tpl.Execute(f, e)
}

func tcpReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func fileReady(path string) func() error {
	return func() error {
		_, err := os.Stat(path)
		return err
	}
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// outputPeer fills in progress and verify for a peer that writes JSON lines to e.Out.
func outputPeer(in *instance, e *runEnv, sc *scenario) *instance {
	lc := &lineCounter{path: e.Out}
	in.progress = lc.count
	in.verify = func() error { return verifyLines(e.Out, sc.lines, true) }
	return in
}

func startRsyslog(t *tools, sc *scenario, e *runEnv) (*instance, error) {
	conf := "rsyslog-tcp.conf"
	if sc.input == "file" {
		conf = "rsyslog-file.conf"
	}
	path, err := render(conf, e)
	if err != nil {
		return nil, err
	}
	pidfile := filepath.Join(e.Dir, "rsyslogd.pid")
	p, err := startProc("rsyslog", []string{t.rsyslogd, "-n", "-f", path, "-i", pidfile}, nil, e.Dir, filepath.Join(e.Dir, "rsyslog.log"))
	if err != nil {
		return nil, err
	}
	in := &instance{p: p, target: addr(e.Port), ready: tcpReady(addr(e.Port))}
	if sc.input == "file" {
		in.ready = fileReady(pidfile)
	}
	return outputPeer(in, e, sc), nil
}

func startSyslogNG(t *tools, sc *scenario, e *runEnv) (*instance, error) {
	path, err := render("syslog-ng-tcp.conf", e)
	if err != nil {
		return nil, err
	}
	argv := []string{t.syslogNG, "-F", "-e", "--no-caps", "--module-path=" + t.sngModules(), "-f", path,
		"-R", filepath.Join(e.Dir, "syslog-ng.persist"), "-p", filepath.Join(e.Dir, "syslog-ng.pid"),
		"-c", filepath.Join(e.Dir, "syslog-ng.ctl")}
	p, err := startProc("syslog-ng", argv, t.sngEnv(), e.Dir, filepath.Join(e.Dir, "syslog-ng.log"))
	if err != nil {
		return nil, err
	}
	return outputPeer(&instance{p: p, target: addr(e.Port), ready: tcpReady(addr(e.Port))}, e, sc), nil
}

func startBenthos(t *tools, sc *scenario, e *runEnv) (*instance, error) {
	path, err := render("benthos-"+sc.input+".yaml", e)
	if err != nil {
		return nil, err
	}
	p, err := startProc("benthos", []string{t.benthos, "run", path}, nil, e.Dir, filepath.Join(e.Dir, "benthos.log"))
	if err != nil {
		return nil, err
	}
	in := &instance{p: p, target: addr(e.Port), ready: tcpReady(addr(e.Port))}
	switch sc.input {
	case "http":
		in.target = "http://" + addr(e.Port) + "/post"
	case "file":
		in.ready = func() error { return nil }
	}
	return outputPeer(in, e, sc), nil
}

func startBaseline(t *tools, sc *scenario, e *runEnv) (*instance, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := []string{self, "baseline", "-mode", sc.input, "-addr", addr(e.Port), "-in", e.InGlob, "-out", e.Out}
	p, err := startProc("go-baseline", argv, nil, e.Dir, filepath.Join(e.Dir, "baseline.log"))
	if err != nil {
		return nil, err
	}
	in := &instance{p: p, target: addr(e.Port), ready: tcpReady(addr(e.Port))}
	switch sc.input {
	case "http":
		in.target = "http://" + addr(e.Port) + "/"
	case "file":
		in.ready = fileReady(e.Out)
	}
	in = outputPeer(in, e, sc)
	// The baseline copies the lines as they are.
	in.verify = func() error { return verifyLines(e.Out, sc.lines, false) }
	return in, nil
}

func startVigil(t *tools, sc *scenario, e *runEnv) (*instance, error) {
	conf := map[string]string{"tcp": "vigil-syslog.yaml", "http": "vigil-http.yaml", "file": "vigil-file.yaml"}[sc.input]
	path, err := render(conf, e)
	if err != nil {
		return nil, err
	}
	argv := []string{t.vigil, "run", "-c", path, "--log-level", "warn"}
	if sc.cpuProfile != "" {
		argv = append(argv, "--cpuprofile", sc.cpuProfile)
	}
	p, err := startProc("vigil", argv, nil, e.Dir, filepath.Join(e.Dir, "vigil.log"))
	if err != nil {
		return nil, err
	}
	admin := "http://" + addr(e.AdminPort)
	in := &instance{p: p, target: addr(e.Port)}
	if sc.input == "http" {
		in.target = "http://" + addr(e.Port) + "/v1/events/http"
	}
	in.ready = func() error {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	}
	in.progress = func() (int64, error) {
		sent, dead, err := vigilCounts(admin)
		return sent + dead, err
	}
	in.verify = func() error {
		sent, dead, err := vigilCounts(admin)
		if err != nil {
			return err
		}
		if sent != int64(sc.lines-sc.bad) || dead != int64(sc.bad) {
			return fmt.Errorf("vigil: %d events archived and %d dead-lettered, want %d and %d", sent, dead, sc.lines-sc.bad, sc.bad)
		}
		return verifyArchive(filepath.Join(e.Dir, "archive"), sent, sc.hashes)
	}
	return in, nil
}

// vigilCounts reads the events the sinks have delivered and the records and events
// dead-lettered from Vigil's /metrics.
func vigilCounts(admin string) (sent, dead int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		var into *int64
		switch {
		case strings.HasPrefix(l, "vigil_sent_events_total{") && strings.Contains(l, `kind="sink"`):
			into = &sent
		case strings.HasPrefix(l, "vigil_dead_lettered_total{"):
			into = &dead
		default:
			continue
		}
		v, perr := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("metrics: %q: %w", l, perr)
		}
		*into += int64(v)
	}
	return sent, dead, sc.Err()
}

// lineHash is the hash the corpus's lines are known by.
func lineHash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// corpusHashes returns the sorted hashes of the corpus's lines, without '\n'.
func corpusHashes(c *corpus.Corpus) []uint64 {
	hs := make([]uint64, c.Lines())
	for i := range hs {
		l := c.Line(i)
		hs[i] = lineHash(l[:len(l)-1])
	}
	slices.Sort(hs)
	return hs
}

// verifyArchive counts the lines of every gzip NDJSON file under dir (they must be
// want) and checks a sample of about a thousand: valid JSON, an @timestamp, and an
// event.original that is a line of the corpus.
func verifyArchive(dir string, want int64, hashes []uint64) error {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".ndjson.gz") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	every := max(want/1000, 1)
	var n, checked int64
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("archive %s: %w", path, err)
		}
		br := bufio.NewReaderSize(zr, 1<<20)
		for {
			line, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				f.Close()
				return fmt.Errorf("archive %s: a line over 1 MiB", path)
			}
			if len(line) > 0 {
				if n%every == 0 {
					if err := checkEvent(line, hashes); err != nil {
						f.Close()
						return fmt.Errorf("archive %s line: %w", path, err)
					}
					checked++
				}
				n++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("archive %s: %w", path, err)
			}
		}
		f.Close()
	}
	if n != want {
		return fmt.Errorf("archive: %d lines in %d files, the metrics say %d", n, len(files), want)
	}
	if checked == 0 && want > 0 {
		return errors.New("archive: no event checked")
	}
	return nil
}

func checkEvent(line []byte, hashes []uint64) error {
	var ev struct {
		Timestamp string `json:"@timestamp"`
		Event     struct {
			Original string `json:"original"`
			Dataset  string `json:"dataset"`
		} `json:"event"`
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		return fmt.Errorf("%w: %.200s", err, line)
	}
	if ev.Timestamp == "" || ev.Event.Dataset == "" {
		return fmt.Errorf("no @timestamp or event.dataset: %.200s", line)
	}
	if _, ok := slices.BinarySearch(hashes, lineHash([]byte(ev.Event.Original))); !ok {
		return fmt.Errorf("event.original is no line that was sent: %.200s", ev.Event.Original)
	}
	return nil
}

// lineCounter counts the lines of a file that grows, reading only what is new.
type lineCounter struct {
	path string
	f    *os.File
	n    int64
	buf  []byte
}

func (lc *lineCounter) count() (int64, error) {
	if lc.f == nil {
		f, err := os.Open(lc.path)
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		lc.f, lc.buf = f, make([]byte, 4<<20)
	}
	for {
		k, err := lc.f.Read(lc.buf)
		lc.n += int64(bytes.Count(lc.buf[:k], []byte{'\n'}))
		if err == io.EOF || k == 0 {
			return lc.n, nil
		}
		if err != nil {
			return lc.n, err
		}
	}
}

func (lc *lineCounter) close() {
	if lc.f != nil {
		lc.f.Close()
	}
}

// verifyLines checks that path holds want lines and that a sample of about a
// thousand of them carry the line's sequence number, and are JSON objects when
// asJSON is set.
func verifyLines(path string, want int, asJSON bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	every := max(want/1000, 1)
	br := bufio.NewReaderSize(f, 1<<20)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("%s: a line over 1 MiB", path)
		}
		if len(line) > 0 {
			if n%every == 0 {
				if asJSON && (!json.Valid(line) || line[0] != '{') {
					return fmt.Errorf("%s line %d is no JSON object: %.200s", path, n+1, line)
				}
				if !bytes.Contains(line, []byte("seq")) {
					return fmt.Errorf("%s line %d lost the message: %.200s", path, n+1, line)
				}
			}
			n++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != want {
		return fmt.Errorf("%s: %d lines, want %d", path, n, want)
	}
	return nil
}
