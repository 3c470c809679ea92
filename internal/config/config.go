// Package config is Vigil's configuration: the typed structs that are its single source
// of truth, their defaults, loading from YAML with file:line:column in every error,
// ${VAR} and ${file:/path} secret substitution, and the checks across the graph.
//
// Component-specific settings (a source's address, a sink's path) belong to the
// component packages; the loader asks a Registry for a fresh default config of each
// `type:` and decodes the component's keys into it, rejecting unknown ones.
package config

import (
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/process/validate"
)

// Roles a node can play.
const (
	RoleAll     = "all"     // sources, processing and sinks
	RoleIngest  = "ingest"  // sources only
	RoleProcess = "process" // processing and sinks
)

// Config is a whole Vigil configuration.
type Config struct {
	// DataDir holds the embedded stream, archive defaults and local state.
	DataDir string `yaml:"data_dir"`
	// Role selects what this node runs: all, ingest or process.
	Role string `yaml:"role"`
	// NodeName names this node in `vigil status` and the cluster's node registry;
	// default the host name. Several nodes on one host need different names.
	NodeName string `yaml:"node_name"`
	// Buffer is the durable stream between stages.
	Buffer Buffer `yaml:"buffer"`
	// Admin is the admin HTTP listener (/metrics, /healthz, /readyz and the DLQ API).
	Admin Admin `yaml:"admin"`
	// Processing configures the stage between the intake and events streams.
	Processing Processing `yaml:"processing"`
	// Limits bound what this node holds in memory.
	Limits Limits `yaml:"limits"`
	// ShutdownTimeout bounds a graceful stop: drain in-flight work and flush sinks.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Sources and Sinks by name, in the order the file lists them.
	Sources []*Source `yaml:"-"`
	Sinks   []*Sink   `yaml:"-"`

	// File is the path the config was loaded from; empty for the built-in default.
	File string `yaml:"-"`
	// Embedded is true for the built-in default used when no file is given.
	Embedded bool `yaml:"-"`
	// Warnings are what Load found questionable but accepted (deprecated settings).
	Warnings Problems `yaml:"-"`
}

// Buffer configures the JetStream spine.
type Buffer struct {
	// Type is "embedded" (an in-process NATS server under data_dir) or "nats" (an
	// external server or cluster).
	Type string `yaml:"type"`
	// URLs of the external NATS servers (type nats). A password or token in a URL
	// (nats://user:pass@host) is shown as xxxxx in logs, errors and the banner;
	// user/password, token or credentials_file keep it out of the URL.
	URLs []string `yaml:"urls"`
	// CredentialsFile is a NATS .creds file (type nats).
	CredentialsFile string `yaml:"credentials_file"`
	// User, Password and Token authenticate to an external server.
	User     string `yaml:"user"`
	Password string `yaml:"password" secret:"true"`
	Token    string `yaml:"token" secret:"true"`
	// TLS for an external server.
	TLS ClientTLS `yaml:"tls"`
	// Replicas of each stream (type nats; 3 for a production cluster).
	Replicas int `yaml:"replicas"`
	// Sync is the durability of the embedded server: "always" fsyncs every write before
	// JetStream acknowledges it (survives power loss); "interval" flushes every
	// sync_interval (survives a process crash, may lose the last interval on power loss).
	Sync string `yaml:"sync"`
	// SyncInterval is the flush period when sync is "interval".
	SyncInterval time.Duration `yaml:"sync_interval"`
	// Listen, when set, also serves the embedded NATS server on this TCP address so
	// that other nodes or the nats CLI can reach it. Empty: no port is opened. A
	// non-loopback address needs listen_auth and listen_tls; port 0 picks a free port.
	Listen string `yaml:"listen"`
	// ListenAuth is the credentials clients of buffer.listen must present. Vigil's
	// own connection is in-process and unaffected.
	ListenAuth ListenAuth `yaml:"listen_auth"`
	// ListenTLS serves buffer.listen over TLS only.
	ListenTLS ServerTLS `yaml:"listen_tls"`
	// Intake, Events and DLQ bound the three streams.
	Intake Retention    `yaml:"intake"`
	Events Retention    `yaml:"events"`
	DLQ    DLQRetention `yaml:"dlq"`
	// DuplicateWindow is how long JetStream remembers message IDs to drop a
	// re-publish after a crash.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// AckWait is how long a consumer may hold a message before it is redelivered.
	AckWait time.Duration `yaml:"ack_wait"`
	// PublishTimeout bounds the wait for the stream's acknowledgement of a write;
	// past it a source answers 503 and the sender retries.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// LeaseTTL (type nats) is how long a sink's lease outlives a holder that stopped
	// renewing it: each sink runs on one process node at a time, and when that node
	// dies another takes the sink over after at most this long (plus ack_wait for
	// the batches the dead node held). A holder renews every third of it and stops
	// writing when it could not renew for half of it.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// ClientTLS configures a TLS client.
type ClientTLS struct {
	// CAFile holds the PEM certificates that sign the server's certificate.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for servers that require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify skips verifying the server's certificate (testing only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Enabled reports whether any TLS setting is present.
func (t ClientTLS) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// ServerTLS configures a TLS listener (the HTTP sources, syslog over TLS).
type ServerTLS struct {
	// CertFile is the PEM certificate chain the listener presents.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, requires client certificates signed by these CAs.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the listener serves TLS.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }

// ListenAuth is who may connect to the embedded server's listener: a user with a
// password, a user nkey, or both (either then suffices).
type ListenAuth struct {
	// User and Password: clients connect with nats://user:password@host or the nats
	// CLI's --user/--password. Password may be a bcrypt hash ("$2a$…", `nats server
	// passwd`), which nats-server then checks against.
	User     string `yaml:"user"`
	Password string `yaml:"password" secret:"true"`
	// NKey is the public key of a user nkey ("U…", from `nk -gen user -pubout`);
	// clients sign the server's challenge with its seed (nats CLI --nkey).
	NKey string `yaml:"nkey"`
}

// Enabled reports whether any credential is set.
func (a ListenAuth) Enabled() bool { return a.User != "" || a.Password != "" || a.NKey != "" }

// Retention bounds one stream.
type Retention struct {
	// MaxAge is how long messages are kept.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes is the stream's size limit.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// Overflow policies of a full dead-letter stream.
const (
	// DLQDropNewer discards the new dead letters while the stream is full.
	DLQDropNewer = "drop_newer"
	// DLQDropOlder removes the oldest dead letters to make room for new ones.
	DLQDropOlder = "drop_older"
)

// DLQRetention bounds the dead-letter stream and says what happens when it is full.
type DLQRetention struct {
	Retention `yaml:",inline"`
	// Overflow is what happens to dead letters when the stream is at max_bytes:
	// drop_newer discards the new ones, drop_older removes the oldest to make room.
	// Either way every discarded letter is counted (vigil_dlq_discarded_total) and
	// logged, and good events keep flowing: a full DLQ never stops ingestion.
	Overflow string `yaml:"overflow"`
}

// Admin configures the admin listener.
type Admin struct {
	// Address to listen on; empty disables the admin listener. A non-loopback
	// address needs a token.
	Address string `yaml:"address"`
	// Token is the bearer token (`Authorization: Bearer …`, `vigil dlq --token` or
	// VIGIL_ADMIN_TOKEN) the admin API requires: always for the DLQ endpoints, and
	// for /metrics and /readyz too when the address is not loopback. /healthz stays
	// open for liveness probes. At least 16 printable characters, such as
	// `openssl rand -hex 32`; write it as ${VAR} or ${file:/path}.
	Token string `yaml:"token" secret:"true"`
}

// Limits are the node's resource budgets.
type Limits struct {
	// Memory is the node's memory budget (docs/performance.md#memory): the Go
	// runtime's soft memory limit (GOMEMLIMIT) is set to 80% of it, unless GOMEMLIMIT
	// is set in the environment, and the bytes in flight are sized from it: intake
	// batches being stored (1/4), intake messages fetched by processing (1/16 over all
	// workers) and event batches pulled by each sink (1/16 each). At least 64MiB;
	// 256MiB fits a small node, at up to ~1.5x the CPU per event at high rates
	// (the collector then runs almost continuously).
	Memory ByteSize `yaml:"memory"`
}

// Share returns the part of the memory budget for one use: memory/div, at least
// 1MiB.
func (l Limits) Share(div int) int {
	return max(int(l.Memory)/div, 1<<20)
}

// Processing configures the processing stage.
type Processing struct {
	// Workers is the number of concurrent processing workers on this node.
	Workers int `yaml:"workers"`
	// Fetch is how many intake messages a worker takes at a time.
	Fetch int `yaml:"fetch"`
	// Processors shape each event after it is parsed, in order (docs/processors.md).
	Processors []*Processor `yaml:"-"`
	// Validate is deprecated: use a processor of type validate. When enabled it runs
	// as one more validate step after the configured processors.
	Validate validate.Config `yaml:"validate"`
	// EventsCompression is how event batches are compressed on the events stream:
	// s2 (cheapest to compress and decompress), gzip or zstd (whole frames a
	// file_archive of that compression appends to its files as they are, without
	// decompressing and compressing again), or auto: the compression and level of
	// the first file_archive or ndjson s3 sink, else s2. Sinks read every encoding.
	EventsCompression string `yaml:"events_compression"`
}

// FrameSettings is implemented by the settings of a sink that writes event batches
// as they crossed the stream when they are compressed as it compresses
// (processing.events_compression: auto picks the first such sink's). An empty
// encoding: not with these settings (an s3 sink writing parquet).
type FrameSettings interface {
	FrameEncoding() (encoding string, level int)
}

// EventsEncoding resolves processing.events_compression: the encoding of event
// batches on the events stream ("s2", "gzip" or "zstd") and its level.
func (c *Config) EventsEncoding() (encoding string, level int) {
	if e := c.Processing.EventsCompression; e != "" && e != "auto" {
		return e, 1
	}
	for _, s := range c.Sinks {
		if fs, ok := s.Settings.(FrameSettings); ok {
			if enc, level := fs.FrameEncoding(); enc != "" {
				return enc, level
			}
		}
	}
	return "s2", 1
}

// Processor is one configured processor.
type Processor struct {
	// Type selects the processor (drop, set, rename, remove, redact, route, validate).
	Type string `yaml:"type"`
	// Name labels the processor in metrics and dead letters; default: its index.
	Name string `yaml:"name"`
	// If is an expr condition over the event's fields; the processor runs only on
	// events for which it is true. Empty: every event.
	If string `yaml:"if"`
	// Settings is the processor's typed config.
	Settings Component `yaml:"-"`
}

// NameChecker is implemented by processor configs whose entry's name matters (a
// threshold rule's name names its shared state): the config check calls CheckName
// with the entry's name (names are unique in any case).
type NameChecker interface {
	CheckName(name string) error
}

// Source is one configured source.
type Source struct {
	Name string `yaml:"-"`
	// Type selects the component (http, …).
	Type string `yaml:"type"`
	// Format names the parser of this source's records.
	Format string `yaml:"format"`
	// FormatOptions are the parser's options (decoded into the format's config).
	FormatOptions parse.Config `yaml:"-"`
	// Dataset is the event.dataset of this source's events; default: the format's
	// dataset, else the source's name.
	Dataset string `yaml:"dataset"`
	// KeepOriginal keeps the record as event.original.
	KeepOriginal bool `yaml:"keep_original"`
	// Settings is the component's typed config.
	Settings Component `yaml:"-"`
}

// Sink is one configured sink.
type Sink struct {
	Name string `yaml:"-"`
	Type string `yaml:"type"`
	// Inputs are the datasets this sink takes, as globs ("*", "aws.*").
	Inputs []string `yaml:"inputs"`
	// Settings is the component's typed config.
	Settings Component `yaml:"-"`
}

// Component is the typed config of one source or sink type.
type Component interface {
	// Validate reports the first problem, naming the option (e.g. "address: ...").
	Validate() error
}

// Registry tells the loader which component types and formats exist.
type Registry interface {
	// SourceConfig returns a fresh config with defaults for a source type.
	SourceConfig(typ string) (Component, bool)
	// SinkConfig returns a fresh config with defaults for a sink type.
	SinkConfig(typ string) (Component, bool)
	// FormatConfig returns a fresh options struct for a format.
	FormatConfig(name string) (parse.Config, bool)
	// ProcessorConfig returns a fresh config with defaults for a processor type.
	ProcessorConfig(typ string) (Component, bool)
	// SourceTypes, SinkTypes, FormatNames and ProcessorTypes list the names, for
	// error messages.
	SourceTypes() []string
	SinkTypes() []string
	FormatNames() []string
	ProcessorTypes() []string
}

// Defaults returns a Config with every top-level default filled in and no
// components.
func Defaults() *Config {
	return &Config{
		DataDir: "./vigil-data",
		Role:    RoleAll,
		Buffer: Buffer{
			Type:            "embedded",
			Replicas:        1,
			Sync:            "always",
			SyncInterval:    2 * time.Minute,
			Intake:          Retention{MaxAge: 72 * time.Hour, MaxBytes: 8 << 30},
			Events:          Retention{MaxAge: 72 * time.Hour, MaxBytes: 16 << 30},
			DLQ:             DLQRetention{Retention: Retention{MaxAge: 30 * 24 * time.Hour, MaxBytes: 2 << 30}, Overflow: DLQDropNewer},
			DuplicateWindow: 2 * time.Minute,
			AckWait:         60 * time.Second,
			PublishTimeout:  10 * time.Second,
			LeaseTTL:        10 * time.Second,
		},
		Admin:           Admin{Address: "127.0.0.1:8686"},
		Processing:      Processing{Workers: 2, Fetch: 64, Validate: *validate.NewConfig(), EventsCompression: "auto"},
		Limits:          Limits{Memory: DefaultMemory},
		ShutdownTimeout: 30 * time.Second,
	}
}

// DefaultMemory is limits.memory's default. At 256 MiB the garbage collector ran
// almost continuously once the embedded server's block caches grew with the rate
// (docs/performance.md#memory): 384 MiB costs ~45 MiB more resident memory at
// 60,000 syslog lines/s and saves about 30% of the CPU per event.
const DefaultMemory = 384 << 20

// Source returns the source with the given name.
func (c *Config) Source(name string) (*Source, bool) {
	for _, s := range c.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// RunsSources, RunsProcessing and RunsSinks report what this node's role includes.
func (c *Config) RunsSources() bool    { return c.Role == RoleAll || c.Role == RoleIngest }
func (c *Config) RunsProcessing() bool { return c.Role == RoleAll || c.Role == RoleProcess }
func (c *Config) RunsSinks() bool      { return c.Role == RoleAll || c.Role == RoleProcess }

// ByteSize is a size in bytes, written in YAML as a number or with a unit
// ("10MiB", "1 GiB", "512KB").
type ByteSize int64

// UnmarshalYAML implements goccy/go-yaml's BytesUnmarshaler.
func (b *ByteSize) UnmarshalYAML(data []byte) error {
	n, err := ParseByteSize(string(data))
	if err != nil {
		return err
	}
	*b = ByteSize(n)
	return nil
}

// ParseByteSize reads "123", "10MiB", "1.5 GB" and similar.
func ParseByteSize(s string) (int64, error) {
	var num float64
	var unit string
	s = trimQuotes(s)
	if _, err := fmt.Sscanf(s, "%g%s", &num, &unit); err != nil {
		if _, err2 := fmt.Sscanf(s, "%g", &num); err2 != nil {
			return 0, fmt.Errorf("want a size such as 512KiB, 10MiB or 2GiB, got %q", s)
		}
	}
	mult := map[string]float64{
		"": 1, "b": 1, "B": 1,
		"KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"K": 1 << 10, "M": 1 << 20, "G": 1 << 30,
	}[unit]
	if mult == 0 || num < 0 {
		return 0, fmt.Errorf("want a size such as 512KiB, 10MiB or 2GiB, got %q", s)
	}
	return int64(num * mult), nil
}

func trimQuotes(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
