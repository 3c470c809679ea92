package process_test

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/process"
	"github.com/vigil-sec/vigil/internal/process/processors"
)

// benchProcessors are 8 cheap processors of the kinds users configure; the first 3
// are the 3-processor case.
func benchProcessors() []*config.Processor {
	return []*config.Processor{
		{Type: "set", Settings: &processors.SetConfig{Field: "labels.env", Value: "prod"}},
		{Type: "rename", Settings: &processors.RenameConfig{Fields: map[string]string{"host.hostname": "host.name"}}},
		{Type: "remove", If: `event.dataset startsWith "aws."`, Settings: &processors.RemoveConfig{Fields: []string{"event.original"}}},
		{Type: "drop", If: `event.dataset == "syslog" && log.syslog.severity.code >= 7`, Settings: &processors.DropConfig{}},
		{Type: "redact", Settings: &processors.RedactConfig{Fields: []string{"user.name", "source.ip"}, Mode: "hash", Key: "0123456789abcdef0123456789abcdef"}},
		{Type: "route", If: `event.outcome == "failure"`, Settings: &processors.RouteConfig{Dataset: "security.failures"}},
		{Type: "set", Settings: &processors.SetConfig{Field: "labels.tier", Expr: `event.dataset startsWith "aws." ? "cloud" : "host"`}},
		{Type: "set", Settings: &processors.SetConfig{Field: "related.hosts", ValueFrom: "host.name"}},
	}
}

// BenchmarkChain runs the per-event path with 0, 3 and 8 processors; "0" is the
// chain present but empty, the default.
func BenchmarkChain(b *testing.B) {
	reg := components.Builtin()
	for _, in := range benchInputs(b) {
		for _, n := range []int{0, 3, 8} {
			b.Run(in.name+"/"+string(rune('0'+n))+"_processors", func(b *testing.B) {
				procs := benchProcessors()[:n]
				for _, pc := range procs {
					if err := pc.Settings.Validate(); err != nil {
						b.Fatal(err)
					}
				}
				chain, err := process.NewChain(procs, reg.Processor, process.Deps{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				norm := in.norm(b)
				norm.Chain = chain
				runNormalize(b, norm, in.records)
			})
		}
	}
}
