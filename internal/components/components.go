// Package components is the one explicit list of Vigil's built-in sources, sinks,
// formats and processors. Adding a component is one new package plus one line here.
package components

import (
	"fmt"
	"slices"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/albparse"
	"github.com/vigil-sec/vigil/internal/parse/apacheparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudfrontparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudtrailparse"
	"github.com/vigil-sec/vigil/internal/parse/cloudwatchparse"
	"github.com/vigil-sec/vigil/internal/parse/jsonparse"
	"github.com/vigil-sec/vigil/internal/parse/linesparse"
	"github.com/vigil-sec/vigil/internal/parse/nginxparse"
	"github.com/vigil-sec/vigil/internal/parse/syslogparse"
	"github.com/vigil-sec/vigil/internal/parse/vpcflowparse"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/processors"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/sink/elasticsearchsink"
	"github.com/vigil-sec/vigil/internal/sink/s3sink"
	"github.com/vigil-sec/vigil/internal/sink/slacksink"
	"github.com/vigil-sec/vigil/internal/sink/splunkhecsink"
	"github.com/vigil-sec/vigil/internal/sink/webhooksink"
	"github.com/vigil-sec/vigil/internal/source/esbulksource"
	"github.com/vigil-sec/vigil/internal/source/filesource"
	"github.com/vigil-sec/vigil/internal/source/firehosesource"
	"github.com/vigil-sec/vigil/internal/source/hecsource"
	"github.com/vigil-sec/vigil/internal/source/httpsource"
	"github.com/vigil-sec/vigil/internal/source/kinesissource"
	"github.com/vigil-sec/vigil/internal/source/pollsource"
	"github.com/vigil-sec/vigil/internal/source/s3source"
	"github.com/vigil-sec/vigil/internal/source/sqssource"
	"github.com/vigil-sec/vigil/internal/source/syslogsource"
)

// SourceFactory builds one source type.
type SourceFactory struct {
	NewConfig func() config.Component
	New       func(cfg config.Component, deps component.SourceDeps) (component.Source, error)
}

// SinkFactory builds one sink type.
type SinkFactory struct {
	NewConfig func() config.Component
	New       func(cfg config.Component, deps component.SinkDeps) (component.Sink, error)
}

// Registry maps config types to constructors. It implements config.Registry.
type Registry struct {
	Sources map[string]SourceFactory
	Sinks   map[string]SinkFactory
	Formats map[string]parse.Format
	// Processors are the processor types, by `type:`.
	Processors map[string]process.Type
}

var _ config.Registry = (*Registry)(nil)

// Builtin returns a registry of every built-in component.
func Builtin() *Registry {
	r := &Registry{
		Sources: map[string]SourceFactory{
			"http": {
				NewConfig: func() config.Component { return httpsource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return httpsource.New(c.(*httpsource.Config), d), nil
				},
			},
			"syslog": {
				NewConfig: func() config.Component { return syslogsource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return syslogsource.New(c.(*syslogsource.Config), d), nil
				},
			},
			"hec": {
				NewConfig: func() config.Component { return hecsource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return hecsource.New(c.(*hecsource.Config), d), nil
				},
			},
			"elasticsearch_bulk": {
				NewConfig: func() config.Component { return esbulksource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return esbulksource.New(c.(*esbulksource.Config), d), nil
				},
			},
			"firehose": {
				NewConfig: func() config.Component { return firehosesource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return firehosesource.New(c.(*firehosesource.Config), d), nil
				},
			},
			"s3": {
				NewConfig: func() config.Component { return s3source.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return s3source.New(c.(*s3source.Config), d)
				},
			},
			"kinesis": {
				NewConfig: func() config.Component { return kinesissource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return kinesissource.New(c.(*kinesissource.Config), d), nil
				},
			},
			"poll": {
				NewConfig: func() config.Component { return pollsource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return pollsource.New(c.(*pollsource.Config), d)
				},
			},
			"sqs": {
				NewConfig: func() config.Component { return sqssource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return sqssource.New(c.(*sqssource.Config), d), nil
				},
			},
			"file": {
				NewConfig: func() config.Component { return filesource.NewConfig() },
				New: func(c config.Component, d component.SourceDeps) (component.Source, error) {
					return filesource.New(c.(*filesource.Config), d)
				},
			},
		},
		Sinks: map[string]SinkFactory{
			"elasticsearch": {
				NewConfig: func() config.Component { return elasticsearchsink.NewConfig() },
				New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
					return elasticsearchsink.New(c.(*elasticsearchsink.Config), elasticsearchsink.FlavourElasticsearch, d)
				},
			},
			"splunk_hec": {
				NewConfig: func() config.Component { return splunkhecsink.NewConfig() },
				New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
					return splunkhecsink.New(c.(*splunkhecsink.Config), d)
				},
			},
			"s3": {
				NewConfig: func() config.Component { return s3sink.NewConfig() },
				New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
					return s3sink.New(c.(*s3sink.Config), d)
				},
			},
			"opensearch": {
				NewConfig: func() config.Component { return elasticsearchsink.NewConfig() },
				New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
					return elasticsearchsink.New(c.(*elasticsearchsink.Config), elasticsearchsink.FlavourOpenSearch, d)
				},
			},
			"slack": {
				NewConfig: func() config.Component { return slacksink.NewConfig() },
				New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
					return slacksink.New(c.(*slacksink.Config), d)
				},
			},
			"webhook": {
				NewConfig: func() config.Component { return webhooksink.NewConfig() },
				New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
					return webhooksink.New(c.(*webhooksink.Config), d)
				},
			},
			"file_archive": {
				NewConfig: func() config.Component { return archivesink.NewConfig() },
				New: func(c config.Component, d component.SinkDeps) (component.Sink, error) {
					return archivesink.New(c.(*archivesink.Config), d), nil
				},
			},
		},
		Formats:    map[string]parse.Format{},
		Processors: map[string]process.Type{},
	}
	for _, t := range processors.Types() {
		r.Processors[t.Name] = t
	}
	for _, f := range []parse.Format{
		jsonparse.Format(),
		jsonparse.NDJSONFormat(),
		linesparse.Format(),
		albparse.Format(),
		cloudfrontparse.Format(),
		vpcflowparse.Format(),
		apacheparse.Format(),
		nginxparse.Format(),
		syslogparse.Format(),
		cloudtrailparse.Format(),
		// CloudWatch Logs messages may be parsed further by any other format.
		cloudwatchparse.NewFormat(r.Format),
	} {
		r.AddFormat(f)
	}
	return r
}

// AddFormat registers a format; a duplicate name is a programming error.
func (r *Registry) AddFormat(f parse.Format) {
	if _, dup := r.Formats[f.Name]; dup {
		panic(fmt.Sprintf("components: format %q registered twice", f.Name))
	}
	r.Formats[f.Name] = f
}

// Format looks a format up.
func (r *Registry) Format(name string) (parse.Format, bool) {
	f, ok := r.Formats[name]
	return f, ok
}

// SourceConfig implements config.Registry.
func (r *Registry) SourceConfig(typ string) (config.Component, bool) {
	f, ok := r.Sources[typ]
	if !ok {
		return nil, false
	}
	return f.NewConfig(), true
}

// SinkConfig implements config.Registry.
func (r *Registry) SinkConfig(typ string) (config.Component, bool) {
	f, ok := r.Sinks[typ]
	if !ok {
		return nil, false
	}
	return f.NewConfig(), true
}

// FormatConfig implements config.Registry.
func (r *Registry) FormatConfig(name string) (parse.Config, bool) {
	f, ok := r.Formats[name]
	if !ok {
		return nil, false
	}
	return f.NewConfig(), true
}

// ProcessorConfig implements config.Registry.
func (r *Registry) ProcessorConfig(typ string) (config.Component, bool) {
	t, ok := r.Processors[typ]
	if !ok {
		return nil, false
	}
	return t.NewConfig(), true
}

// Processor looks a processor type up; it is a process.Types.
func (r *Registry) Processor(name string) (process.Type, bool) {
	t, ok := r.Processors[name]
	return t, ok
}

// ProcessorTypes implements config.Registry.
func (r *Registry) ProcessorTypes() []string { return sortedKeys(r.Processors) }

// SourceTypes implements config.Registry.
func (r *Registry) SourceTypes() []string { return sortedKeys(r.Sources) }

// SinkTypes implements config.Registry.
func (r *Registry) SinkTypes() []string { return sortedKeys(r.Sinks) }

// FormatNames implements config.Registry.
func (r *Registry) FormatNames() []string { return sortedKeys(r.Formats) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
