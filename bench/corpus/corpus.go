// Package corpus generates the benchmark harness's log lines: deterministic for a
// seed, 300–500 bytes per line, in the formats the peer benchmark sends (RFC 5424 with
// and without structured data, RFC 3164, Apache combined, JSON) and the AWS log files
// of the parser and S3 scenarios (ALB access logs, CloudTrail files).
//
// The same seed always yields the same bytes, on every machine and Go version: the
// generator uses math/rand/v2's PCG, whose output is specified, and no map iteration
// or clock.
package corpus

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Kind is one line format.
type Kind int

// The line formats.
const (
	RFC5424SD Kind = iota // RFC 5424 with one SD-ELEMENT
	RFC5424               // RFC 5424 with STRUCTURED-DATA "-"
	RFC3164               // BSD syslog
	Apache                // Apache combined log format
	JSON                  // one JSON object
	Text                  // an application's plain text line, not syslog (starts with a letter)
)

// MinLen and MaxLen bound the length of a generated line, without its '\n'.
const (
	MinLen = 300
	MaxLen = 500
)

// Mix names a corpus: which kinds, in which proportion.
type Mix string

// The corpora of the harness's scenarios.
const (
	// Syslog is RFC 5424 with and without structured data and RFC 3164, a third each.
	Syslog Mix = "syslog"
	// SyslogHalfBad is Syslog on even lines and, on odd lines, JSON or plain text
	// lines that are no syslog at all (none starts with a digit, so no receiver takes
	// them for octet-counted frames).
	SyslogHalfBad Mix = "syslog_half_bad"
	// NDJSON is JSON objects, one per line.
	NDJSON Mix = "ndjson"
	// ApacheLog is Apache combined log lines, as an access log holds them.
	ApacheLog Mix = "apache"
)

// Mixes lists every Mix.
var Mixes = []Mix{Syslog, SyslogHalfBad, NDJSON, ApacheLog}

// base is the time of the first line; each line is a few milliseconds after the
// previous one.
var base = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Generator makes lines. It is not safe for concurrent use.
type Generator struct {
	r   *rand.Rand
	now time.Time
	n   int
}

// New returns a generator for seed.
func New(seed uint64) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: base}
}

// Corpus is n lines, each ending in '\n', in one buffer.
type Corpus struct {
	Data []byte
	// Ends[i] is the offset just past line i's '\n'.
	Ends []int
}

// Lines is the number of lines.
func (c *Corpus) Lines() int { return len(c.Ends) }

// Line returns line i with its '\n'; it aliases Data.
func (c *Corpus) Line(i int) []byte {
	start := 0
	if i > 0 {
		start = c.Ends[i-1]
	}
	return c.Data[start:c.Ends[i]]
}

// Range returns lines [i, j) as one slice of Data.
func (c *Corpus) Range(i, j int) []byte {
	start := 0
	if i > 0 {
		start = c.Ends[i-1]
	}
	return c.Data[start:c.Ends[j-1]]
}

// Generate returns n lines of mix for seed.
func Generate(mix Mix, seed uint64, n int) (*Corpus, error) {
	g := New(seed)
	c := &Corpus{Data: make([]byte, 0, n*(MinLen+MaxLen)/2+n), Ends: make([]int, 0, n)}
	for i := range n {
		var k Kind
		switch mix {
		case Syslog:
			k = Kind(g.r.IntN(3))
		case SyslogHalfBad:
			if i%2 == 0 {
				k = Kind(g.r.IntN(3))
			} else {
				k = []Kind{JSON, Text}[g.r.IntN(2)]
			}
		case NDJSON:
			k = JSON
		case ApacheLog:
			k = Apache
		default:
			return nil, fmt.Errorf("corpus: unknown mix %q (want one of %v)", mix, Mixes)
		}
		c.Data = g.Append(c.Data, k)
		c.Data = append(c.Data, '\n')
		c.Ends = append(c.Ends, len(c.Data))
	}
	return c, nil
}

var (
	hosts    = []string{"web-01.example.com", "web-02.example.com", "db-01.internal", "fw-edge-3", "bastion.corp.example.org", "k8s-node-17", "mail-relay-2"}
	apps     = []string{"sshd", "sudo", "nginx", "postfix", "kernel", "cron", "auditd", "app-gateway", "vault"}
	users    = []string{"alice", "bob", "carol", "dave", "eve", "mallory", "svc-backup", "root", "deploy"}
	methods  = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"}
	paths    = []string{"/", "/login", "/api/v1/users", "/api/v1/orders", "/static/app.js", "/admin/config", "/search", "/wp-login.php", "/healthz"}
	statuses = []int{200, 200, 200, 200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 500, 502, 503}
	agents   = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"curl/8.5.0",
		"python-requests/2.32.3",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"sqlmap/1.8.11#stable (https://sqlmap.org)",
	}
	levels = []string{"INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"}
	words  = []string{"connection", "accepted", "from", "user", "session", "opened", "closed", "for", "request",
		"completed", "in", "ms", "token", "refreshed", "policy", "denied", "allowed", "upstream", "timeout",
		"retrying", "cache", "miss", "hit", "authentication", "failure", "success", "port", "key", "rotated",
		"audit", "record", "written", "queue", "depth", "backend", "healthy", "unhealthy", "tls", "handshake"}
	months = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

func (g *Generator) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *Generator) status() int { return statuses[g.r.IntN(len(statuses))] }

func (g *Generator) ip(dst []byte) []byte {
	dst = strconv.AppendInt(dst, int64(1+g.r.IntN(223)), 10)
	for range 3 {
		dst = append(dst, '.')
		dst = strconv.AppendInt(dst, int64(g.r.IntN(256)), 10)
	}
	return dst
}

// pad appends words separated by sep until line (whose length so far is len(dst) -
// start) reaches want bytes, then cuts it to exactly want.
func (g *Generator) pad(dst []byte, start, want int, sep byte) []byte {
	for len(dst)-start < want {
		dst = append(dst, g.pick(words)...)
		dst = append(dst, sep)
	}
	dst = dst[:start+want]
	if dst[len(dst)-1] == sep {
		dst[len(dst)-1] = 'x'
	}
	return dst
}

// Append appends one line of kind k, without '\n', to dst.
func (g *Generator) Append(dst []byte, k Kind) []byte {
	g.n++
	g.now = g.now.Add(time.Duration(1+g.r.IntN(5)) * time.Millisecond)
	want := MinLen + g.r.IntN(MaxLen-MinLen+1)
	start := len(dst)
	switch k {
	case RFC5424SD, RFC5424:
		dst = append(dst, '<')
		dst = strconv.AppendInt(dst, int64(8*(1+g.r.IntN(23))+g.r.IntN(8)), 10)
		dst = append(dst, ">1 "...)
		dst = g.now.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
		dst = fmt.Appendf(dst, " %s %s %d ID%d ", g.pick(hosts), g.pick(apps), 100+g.r.IntN(60000), g.r.IntN(100))
		if k == RFC5424SD {
			dst = fmt.Appendf(dst, `[exampleSDID@32473 iut="%d" eventSource="%s" eventID="%d"][origin ip="`,
				g.r.IntN(10), g.pick(apps), 1000+g.r.IntN(9000))
			dst = g.ip(dst)
			dst = append(dst, `"] `...)
		} else {
			dst = append(dst, "- "...)
		}
		dst = fmt.Appendf(dst, "user=%s seq=%d ", g.pick(users), g.n)
		dst = g.pad(dst, start, want, ' ')
	case RFC3164:
		dst = append(dst, '<')
		dst = strconv.AppendInt(dst, int64(8*(1+g.r.IntN(23))+g.r.IntN(8)), 10)
		dst = append(dst, '>')
		dst = append(dst, months[g.now.Month()-1]...)
		dst = fmt.Appendf(dst, " %2d %s %s %s[%d]: ", g.now.Day(), g.now.Format("15:04:05"), g.pick(hosts), g.pick(apps), 100+g.r.IntN(60000))
		dst = fmt.Appendf(dst, "user=%s seq=%d from ", g.pick(users), g.n)
		dst = g.ip(dst)
		dst = append(dst, ' ')
		dst = g.pad(dst, start, want, ' ')
	case Apache:
		dst = g.ip(dst)
		dst = fmt.Appendf(dst, " - %s [", g.pick(users))
		dst = g.now.AppendFormat(dst, "02/Jan/2006:15:04:05 -0700")
		dst = fmt.Appendf(dst, `] "%s %s?seq=%d&q=`, g.pick(methods), g.pick(paths), g.n)
		tail := fmt.Appendf(nil, ` HTTP/1.1" %d %d "https://www.example.com%s" "%s"`,
			g.status(), g.r.IntN(200000), g.pick(paths), g.pick(agents))
		// The padding goes into the query string, before the tail.
		dst = g.pad(dst, start, max(want-len(tail), len(dst)-start+8), '+')
		dst = append(dst, tail...)
	case JSON:
		dst = append(dst, `{"@timestamp":"`...)
		dst = g.now.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
		dst = fmt.Appendf(dst, `","log":{"level":"%s"},"service":{"name":"%s"},"host":{"name":"%s"},"user":{"name":"%s"},"source":{"ip":"`,
			g.pick(levels), g.pick(apps), g.pick(hosts), g.pick(users))
		dst = g.ip(dst)
		dst = fmt.Appendf(dst, `"},"http":{"request":{"method":"%s"},"response":{"status_code":%d}},"seq":%d,"message":"`,
			g.pick(methods), g.status(), g.n)
		dst = g.pad(dst, start, want-2, ' ')
		dst = append(dst, `"}`...)
	case Text:
		dst = fmt.Appendf(dst, "%s [worker-%d] com.example.%s.Handler - seq=%d ", g.pick(levels), g.r.IntN(16), g.pick(apps), g.n)
		dst = g.pad(dst, start, want, ' ')
	default:
		panic(fmt.Sprintf("corpus: unknown kind %d", k))
	}
	return dst
}

// ALBLine appends one Application Load Balancer access log entry (the fields AWS's
// documentation lists, in its order), without '\n'.
func (g *Generator) ALBLine(dst []byte) []byte {
	g.n++
	g.now = g.now.Add(time.Duration(1+g.r.IntN(5)) * time.Millisecond)
	client := g.ip(nil)
	target := g.ip(nil)
	status := g.status()
	dst = append(dst, "https "...)
	dst = g.now.AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
	dst = fmt.Appendf(dst, " app/bench-lb/50dc6c495c0c9188 %s:%d %s:80 0.%03d 0.%03d 0.%03d %d %d %d %d ",
		client, 1024+g.r.IntN(60000), target, g.r.IntN(1000), g.r.IntN(1000), g.r.IntN(1000), status, status,
		g.r.IntN(4000), g.r.IntN(200000))
	dst = fmt.Appendf(dst, `"%s https://www.example.com:443%s?seq=%d HTTP/1.1" "%s" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 `,
		g.pick(methods), g.pick(paths), g.n, g.pick(agents))
	dst = fmt.Appendf(dst, `arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/bench/73e2d6bc24d8a067 "Root=1-%08x-%024x" "www.example.com" "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012" 0 `,
		g.r.Uint32(), g.r.Uint64())
	dst = g.now.Add(-time.Duration(g.r.IntN(1000))*time.Millisecond).AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
	dst = fmt.Appendf(dst, ` "forward" "-" "-" "%s:80" "%d" "-" "-" TID_%032x`, target, status, g.r.Uint64())
	return dst
}

// ALBFile returns n ALB log lines, each ending in '\n'.
func (g *Generator) ALBFile(n int) []byte {
	var b []byte
	for range n {
		b = g.ALBLine(b)
		b = append(b, '\n')
	}
	return b
}

// CloudTrailFile returns one CloudTrail log file ({"Records":[…]}) of n records.
func (g *Generator) CloudTrailFile(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Records":[`)
	events := []string{"ConsoleLogin", "AssumeRole", "GetObject", "PutObject", "CreateUser", "AttachUserPolicy", "DescribeInstances", "StopLogging"}
	sources := []string{"signin.amazonaws.com", "sts.amazonaws.com", "s3.amazonaws.com", "s3.amazonaws.com", "iam.amazonaws.com", "iam.amazonaws.com", "ec2.amazonaws.com", "cloudtrail.amazonaws.com"}
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		g.n++
		g.now = g.now.Add(time.Duration(1+g.r.IntN(900)) * time.Millisecond)
		e := g.r.IntN(len(events))
		user := g.pick(users)
		fmt.Fprintf(&b, `{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDA%016X","arn":"arn:aws:iam::123456789012:user/%s","accountId":"123456789012","accessKeyId":"AKIA%016X","userName":"%s"},`,
			g.r.Uint64(), user, g.r.Uint64(), user)
		fmt.Fprintf(&b, `"eventTime":"%s","eventSource":"%s","eventName":"%s","awsRegion":"us-east-1","sourceIPAddress":"%s","userAgent":"%s",`,
			g.now.Format("2006-01-02T15:04:05Z"), sources[e], events[e], g.ip(nil), g.pick(agents))
		fmt.Fprintf(&b, `"requestParameters":{"seq":%d},"responseElements":null,"requestID":"%016x","eventID":"%08x-%04x-%04x-%04x-%012x","readOnly":%t,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management"}`,
			g.n, g.r.Uint64(), g.r.Uint32(), g.r.IntN(1<<16), g.r.IntN(1<<16), g.r.IntN(1<<16), g.r.Uint64()&0xffffffffffff, g.r.IntN(2) == 0)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}
